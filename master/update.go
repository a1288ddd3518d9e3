package master

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/felix-ops/felix/daemon"
	"github.com/felix-ops/felix/pki"
)

// restartWait is how long restart and update wait by default for the
// master to be back (/healthz answering).
const restartWait = 60 * time.Second

// healthy is a Restart.Ready for the master of cfg: GET /healthz on its
// listen address (loopback when it listens on every address), over TLS
// pinned to the master's certificate, answering 200 with its version.
func healthy(cfg Config) func(context.Context, int) (string, bool) {
	return func(ctx context.Context, _ int) (string, bool) {
		pem, err := os.ReadFile(filepath.Join(cfg.DataDir, certName+".crt"))
		if err != nil {
			return "", false
		}
		_, fp, err := pki.ParseCertPEM(pem)
		if err != nil {
			return "", false
		}
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return "", false
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		tr := &http.Transport{TLSClientConfig: pki.ClientConfig(nil, fp)}
		defer tr.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(host, port)+"/healthz", nil)
		if err != nil {
			return "", false
		}
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return "", false
		}
		defer resp.Body.Close()
		var h struct {
			Status  string `json:"status"`
			Version string `json:"version"`
		}
		if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&h) != nil {
			return "", false
		}
		return h.Version, true
	}
}

func restarter(cfg Config) daemon.Restart {
	return daemon.Restart{PIDFile: filepath.Join(cfg.DataDir, pidFile), Ready: healthy(cfg)}
}

func cmdRestart(ctx context.Context, args []string, stdout io.Writer) error {
	var wait *time.Duration
	cfg, _, _, err := load("restart", args, func(fs *pflag.FlagSet) {
		wait = fs.Duration("wait", restartWait, "how long to wait for the master to be healthy again")
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	pid, v, err := restarter(cfg).Do(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "master restarted: pid %d, version %s, healthy\n", pid, v)
	return nil
}

func cmdUpdate(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return fmt.Errorf("want the new binary: master update FILE [--sha256 HEX] [--wait 60s]")
	}
	var wait *time.Duration
	var sha *string
	cfg, _, _, err := load("update", args[1:], func(fs *pflag.FlagSet) {
		wait = fs.Duration("wait", restartWait, "how long the new binary has to become healthy before it is rolled back")
		sha = fs.String("sha256", "", "the sha256 FILE must have (hex)")
	})
	if err != nil {
		return err
	}
	if *wait <= 0 {
		return fmt.Errorf("--wait must be positive")
	}
	u := daemon.Update{Restart: restarter(cfg), File: args[0], SHA256: *sha, Wait: *wait,
		LogFile: filepath.Join(cfg.DataDir, "master.log"), Out: stdout}
	return u.Do(ctx)
}
