// Command crash dies at start-up, like a plugin missing a library.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "fatal: cannot open /nonexistent/libsandbox.so")
	os.Exit(3)
}
