// Command minion is the felix minion daemon that runs on every managed host.
package main

import (
	"context"
	"os"

	"github.com/felix-ops/felix/minion"
)

func main() {
	os.Exit(minion.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
