package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/felix-ops/felix/version"
)

// writeManPages writes a man page for felix and each of its commands,
// felix.1, felix-exec.1, felix-hosts-add.1..., into dir (make dist:
// dist/man).
func writeManPages(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	root.Long = "felix runs commands on many servers through a felix master: minions over mTLS, agentless hosts over SSH. " +
		"Each command's page lists its flags and examples; felix help COMMAND shows the same."
	// The pages are read on other machines, by other users: the default
	// --config as it is for anyone, not as it was where make dist ran.
	var generic func(c *cobra.Command)
	generic = func(c *cobra.Command) {
		if f := c.Flags().Lookup("config"); f != nil {
			f.DefValue = "~/.config/felix/felix.toml, $XDG_CONFIG_HOME/felix/felix.toml if set; root: /etc/felix/felix.toml"
		}
		for _, sub := range c.Commands() {
			generic(sub)
		}
	}
	generic(root)
	header := &doc.GenManHeader{Title: "FELIX", Section: "1", Source: "felix " + version.String(), Manual: "felix manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	return nil
}
