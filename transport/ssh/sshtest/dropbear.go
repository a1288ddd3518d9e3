package sshtest

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/felix-ops/felix/internal/testenv"
)

// Dropbear and DropbearKey are the Dropbear binaries StartDropbear runs
// (Debian's dropbear-bin).
const (
	Dropbear    = "/usr/sbin/dropbear"
	DropbearKey = "/usr/bin/dropbearkey"
)

// dropbearSFTPServer is where Debian's Dropbear looks for sftp-server (its
// compiled SFTPSERVER_PATH, a link to OpenSSH's).
const dropbearSFTPServer = "/usr/lib/sftp-server"

// StartDropbear starts a real Dropbear server on host (e.g. "127.0.0.7";
// "" means 127.0.0.1) and a free port, as a host without an sftp-server:
// Dropbear has none of its own and runs sftp-server only when one is
// installed at its compiled path, which its private mount namespace hides
// (an empty directory is bind-mounted over the directory holding it). In
// that namespace root's home directory is one under Dir (a copy of
// /etc/passwd is bind-mounted over the real one), holding the
// authorized_keys Dropbear reads, so root's real one is never touched; the
// login shell is Shell's when given, else /bin/sh. Dropbear 2022.83 has no
// option naming the authorized keys file. It has its own ed25519 host key
// made by dropbearkey and is stopped in t.Cleanup. Options other than
// Shell, Port and SFTPServer are ignored. A missing Dropbear, unshare or root skips
// the test, or fails it when CI is "true".
func StartDropbear(t testing.TB, host string, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	for _, bin := range []string{Dropbear, DropbearKey} {
		if _, err := os.Stat(bin); err != nil {
			testenv.Missing(t, "dropbear is not installed (%v); install dropbear-bin", err)
		}
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "dropbear tests need root (running as uid %d)", os.Geteuid())
	}
	if err := osexec.Command("unshare", "-m", "true").Run(); err != nil {
		testenv.Missing(t, "dropbear tests need mount namespaces (unshare -m): %v", err)
	}
	shell := o.shell
	if shell == "" {
		shell = "/bin/sh"
	}

	dir := t.TempDir()
	s := &Server{Host: host, User: "root", Dir: dir}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatalf("make dropbear home: %v", err)
	}
	s.authorizedKeys = filepath.Join(home, ".ssh", "authorized_keys")
	s.HostKeyFile = filepath.Join(dir, "dropbear_ed25519_host_key")
	if out, err := osexec.Command(DropbearKey, "-t", "ed25519", "-f", s.HostKeyFile).CombinedOutput(); err != nil {
		t.Fatalf("dropbearkey: %v: %s", err, out)
	}
	out, err := osexec.Command(DropbearKey, "-y", "-f", s.HostKeyFile).Output()
	if err != nil {
		t.Fatalf("dropbearkey -y: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "ssh-") {
			if s.HostKey, _, _, _, err = ssh.ParseAuthorizedKey([]byte(line)); err != nil {
				t.Fatalf("parse dropbear host key %q: %v", line, err)
			}
		}
	}
	if s.HostKey == nil {
		t.Fatalf("dropbearkey -y printed no public key: %s", out)
	}
	s.HostKeyFingerprint = ssh.FingerprintSHA256(s.HostKey)
	s.ClientKey = filepath.Join(dir, "client_key")
	s.AuthorizeKey(t, WriteKey(t, s.ClientKey, ""))

	passwd := filepath.Join(dir, "passwd")
	writePasswd(t, passwd, s.User, shell, home)
	overlays := []string{passwd, "/etc/passwd"}
	if real, err := filepath.EvalSymlinks(dropbearSFTPServer); err == nil && !o.sftpServer {
		empty := filepath.Join(dir, "empty")
		hide := filepath.Dir(real)
		if hide == filepath.Dir(dropbearSFTPServer) {
			// Installed right at the path: hide the file itself
			// behind an empty, non-executable one.
			hide = real
			err = os.WriteFile(empty, nil, 0o600)
		} else {
			err = os.Mkdir(empty, 0o755)
		}
		if err != nil {
			t.Fatalf("hide sftp-server: %v", err)
		}
		overlays = append(overlays, empty, hide)
	}

	pidFile := filepath.Join(dir, "dropbear.pid")
	s.serve(t, "dropbear", o.port, func() error {
		// Arguments: pairs of files to bind-mount, "--", then Dropbear's
		// command line. unshare and the script exec: the process is
		// Dropbear's.
		script := `while [ "$1" != -- ]; do mount --bind "$1" "$2" || exit 1; shift 2; done; shift; exec "$@"`
		args := append([]string{"-m", "--", "/bin/sh", "-c", script, "sh"}, overlays...)
		args = append(args, "--", Dropbear, "-F", "-E", "-s", "-m", "-r", s.HostKeyFile, "-p", s.Addr, "-P", pidFile)
		return s.launch(osexec.Command("unshare", args...), pidFile)
	})
	return s
}
