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
	return &bootstrap.Bootstrapper{
		SSH:               ssh,
		Store:             m.store,
		MasterURL:         bootstrapURL(m.cfg.Bootstrap.MasterURL, m.ln.Addr()),
		MasterFingerprint: m.id.Fingerprint,
		MinionDir:         m.cfg.Bootstrap.MinionDir,
		Timeout:           m.cfg.Bootstrap.Timeout.Duration,
		InstallRoot:       m.cfg.Bootstrap.InstallRoot,
		Log:               m.log.With("component", "bootstrap"),
	}
}

// bootstrapURL is the master URL written into bootstrapped minions' config:
// the configured one, else https://HOST:PORT with the listen address's host
// when it names one, else this machine's host name, and the port listened on.
func bootstrapURL(configured string, listen net.Addr) string {
	if configured != "" {
		return configured
	}
	host, port := "", "8443"
	if ta, ok := listen.(*net.TCPAddr); ok {
		port = strconv.Itoa(ta.Port)
		if !ta.IP.IsUnspecified() && !ta.IP.IsLoopback() {
			host = ta.IP.String()
		}
	}
	if host == "" {
		host, _ = os.Hostname()
	}
	if host == "" {
		host = "localhost"
	}
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, port)}).String()
}
