// gorilla/websocket echo server for run.sh: text back as text, binary as binary.
//
// Usage: echo_server 127.0.0.1:PORT [default|frugal]
//   default: EnableCompression on the Upgrader, EnableWriteCompression(true) per connection
//            (gorilla negotiates no context takeover in both directions)
//   frugal:  the same, plus a shared WriteBufferPool (write buffers only while writing)
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
	"sync"

	"github.com/gorilla/websocket"
)

func main() {
	addr, mode := "127.0.0.1:9001", "default"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	if len(os.Args) > 2 {
		mode = os.Args[2]
	}
	upgrader := websocket.Upgrader{EnableCompression: true}
	switch mode {
	case "default":
	case "frugal":
		upgrader.WriteBufferPool = &sync.Pool{}
	default:
		log.Fatalf("unknown mode %s", mode)
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		conn.EnableWriteCompression(true)
		for {
			kind, data, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if err := conn.WriteMessage(kind, data); err != nil {
				return
			}
		}
	})
	fmt.Printf("gorilla %s listening on ws://%s\n", mode, addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
