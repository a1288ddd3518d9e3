// Command badminion is a minion binary that answers `version` (so a
// minion's checks take it) and exits at once otherwise: the new binary of
// a fleet upgrade that never comes up, which the minion's watchdog must
// roll back.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "version" {
		fmt.Println("vBad")
		return
	}
	fmt.Fprintln(os.Stderr, "badminion: exiting at once")
	os.Exit(3)
}
