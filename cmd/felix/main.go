// Command felix is the operator's command line for a felix master.
package main

import (
	"context"
	"os"

	"github.com/felix-ops/felix/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
