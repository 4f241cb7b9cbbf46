// Command fanout_gorilla is the fan-out benchmark's gorilla/websocket server
// (issue 16; see ../../src/fanout.rs): every data message a connection sends
// goes to every other connection.
//
// Usage: fanout_gorilla ADDR [--deflate]   (for example 127.0.0.1:19400)
//
// It is gorilla's chat example with a PreparedMessage in place of the bytes: a
// hub goroutine owns the clients; each client is a buffered send channel and a
// writePump. The reader makes one PreparedMessage per message, so the frame
// (and with --deflate the compressed frame) is made once and cached for every
// connection with the same settings; each writePump sends it with
// WritePreparedMessage, one write per message and subscriber.
//
// With --deflate the Upgrader has EnableCompression: gorilla accepts any
// permessage-deflate offer and answers with no context takeover either way,
// the only mode it has. It has no size threshold: every message is compressed.
//
// GOMAXPROCS follows the CPU affinity fanout.sh gives it with taskset (one
// CPU), as the Go runtime reads it at start; the line on stderr says so.
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"runtime"

	"github.com/gorilla/websocket"
)

// sendBuffer is each client's queue, the Rust servers' broadcast capacity.
const sendBuffer = 1024

// maxMessage is the largest message read, as the Rust servers' MAX_MESSAGE.
const maxMessage = 64 << 20

// published is one message and the client it came from.
type published struct {
	from    *client
	message *websocket.PreparedMessage
}

// hub keeps the set of clients and sends every message to all but its sender.
type hub struct {
	clients    map[*client]bool
	broadcast  chan published
	register   chan *client
	unregister chan *client
}

func (h *hub) run() {
	for {
		select {
		case c := <-h.register:
			h.clients[c] = true
		case c := <-h.unregister:
			if h.clients[c] {
				delete(h.clients, c)
				close(c.send)
			}
		case p := <-h.broadcast:
			for c := range h.clients {
				if c == p.from {
					continue
				}
				select {
				case c.send <- p.message:
				default:
					// As the chat example: a client that cannot keep up is dropped.
					log.Printf("a client's send buffer is full: dropped")
					delete(h.clients, c)
					close(c.send)
				}
			}
		}
	}
}

// client is one connection: the hub's end is the send channel.
type client struct {
	hub  *hub
	conn *websocket.Conn
	send chan *websocket.PreparedMessage
}

// readPump prepares every data message once and hands it to the hub.
func (c *client) readPump() {
	defer func() {
		c.hub.unregister <- c
		c.conn.Close()
	}()
	c.conn.SetReadLimit(maxMessage)
	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		message, err := websocket.NewPreparedMessage(kind, data)
		if err != nil {
			log.Printf("prepare: %v", err)
			return
		}
		c.hub.broadcast <- published{from: c, message: message}
	}
}

// writePump sends every message the hub queues for this client. The chat
// example's ping ticker and write deadlines are left out: the load side's
// subscribers neither need pings nor stall.
func (c *client) writePump() {
	defer c.conn.Close()
	for message := range c.send {
		if err := c.conn.WritePreparedMessage(message); err != nil {
			return
		}
	}
	c.conn.WriteMessage(websocket.CloseMessage, []byte{})
}

func main() {
	if len(os.Args) < 2 || len(os.Args) > 3 || (len(os.Args) == 3 && os.Args[2] != "--deflate") {
		fmt.Fprintln(os.Stderr, "usage: fanout_gorilla ADDR [--deflate]")
		os.Exit(2)
	}
	addr := os.Args[1]
	upgrader := websocket.Upgrader{EnableCompression: len(os.Args) == 3}
	h := &hub{
		clients:    make(map[*client]bool),
		broadcast:  make(chan published),
		register:   make(chan *client),
		unregister: make(chan *client),
	}
	go h.run()
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			log.Printf("upgrade: %v", err)
			return
		}
		c := &client{hub: h, conn: conn, send: make(chan *websocket.PreparedMessage, sendBuffer)}
		h.register <- c
		go c.writePump()
		go c.readPump()
	})
	fmt.Fprintf(os.Stderr, "fanout_gorilla on %s, GOMAXPROCS %d, compression %v\n",
		addr, runtime.GOMAXPROCS(0), upgrader.EnableCompression)
	log.Fatal(http.ListenAndServe(addr, nil))
}
