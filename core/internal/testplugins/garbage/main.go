// Command garbage writes junk to stdout before any handshake, as a plugin
// that logs to the wrong stream would.
package main

import (
	"fmt"
	"time"
)

func main() {
	fmt.Println("hello, I am not a handshake")
	time.Sleep(time.Minute)
}
