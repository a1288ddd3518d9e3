package master

import (
	"net"
	"net/url"
	"os"
	"strconv"

	"github.com/felix-ops/felix/bootstrap"
)

// bootstrapper builds the minion installer from the [bootstrap] config,
// over the master's SSH pool.
func (m *Master) bootstrapper(ssh bootstrap.SSH) *bootstrap.Bootstrapper {
	u, port := bootstrapURL(m.cfg.Bootstrap.MasterURL, m.ln.Addr())
	return &bootstrap.Bootstrapper{
		SSH:               ssh,
		Store:             m.store,
		MasterURL:         u,
		MasterPort:        port,
		MasterFingerprint: m.id.Fingerprint,
		MinionDir:         m.cfg.Bootstrap.MinionDir,
		Timeout:           m.cfg.Bootstrap.Timeout.Duration,
		InstallRoot:       m.cfg.Bootstrap.InstallRoot,
		Log:               m.log.With("component", "bootstrap"),
	}
}

// bootstrapURL is the master URL written into bootstrapped minions' config:
// the configured one; else, when the master listens on all addresses, none
// but the port, so that each host gets the address the master's SSH
// connection to it comes from (bootstrap.Bootstrapper.MasterPort); else
// https://HOST:PORT with the listen address's host when it names one other
// than loopback, else this machine's host name, and the port listened on.
func bootstrapURL(configured string, listen net.Addr) (masterURL string, derivePort int) {
	if configured != "" {
		return configured, 0
	}
	host, port := "", "8443"
	if ta, ok := listen.(*net.TCPAddr); ok {
		if ta.IP == nil || ta.IP.IsUnspecified() {
			return "", ta.Port
		}
		port = strconv.Itoa(ta.Port)
		if !ta.IP.IsLoopback() {
			host = ta.IP.String()
		}
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "localhost"
	}
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}).String(), 0
}
