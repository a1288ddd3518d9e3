package minion

import "io"

// SetBinary sets what an upgrade replaces and how the new binary is started
// (cmdStart takes them from the process), and where its output goes.
func (m *Minion) SetBinary(exe string, args []string, out io.Writer) {
	m.exe, m.args, m.handoverOut = exe, args, out
}
