package daemon

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"
)

// ConfigCheck runs "PROG config check [--config PATH]": check reads and
// validates the file the way start does, writing nothing. The file is
// --config, else the environment variable FELIX_<PROG>_CONFIG, else def.
// It prints "config PATH: ok" or returns check's one-line error.
func ConfigCheck(prog, def string, args []string, stdout io.Writer, check func(path string) error) error {
	if len(args) == 0 || args[0] != "check" {
		return fmt.Errorf("want: %s config check [--config PATH]", prog)
	}
	fs := pflag.NewFlagSet(prog+" config check", pflag.ContinueOnError)
	path := fs.String("config", def, "config file")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if v, ok := os.LookupEnv(envName(prog)); ok && !fs.Changed("config") {
		*path = v
	}
	if err := check(*path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "config %s: ok\n", *path)
	return nil
}

// envName is FELIX_MASTER_CONFIG or FELIX_MINION_CONFIG.
func envName(prog string) string {
	b := []byte("FELIX_" + prog + "_CONFIG")
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
