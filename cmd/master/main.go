// Command master is the felix master: REST API, job engine and inventory.
package main

import (
	"context"
	"os"

	"github.com/felix-ops/felix/master"
)

func main() {
	os.Exit(master.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
