package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/bootstrap"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
)

// Bootstrapper installs minions over SSH; satisfied by
// *bootstrap.Bootstrapper.
type Bootstrapper interface {
	Many(ctx context.Context, targets []model.Target, ids []string) []bootstrap.Result
}

// maxBootstrapHosts bounds the hosts of one bootstrap request.
const maxBootstrapHosts = 10000

// bootstrap installs minions on the hosts of the request and answers when
// every host has its result. Every host, user, port and key is checked
// before anything connects anywhere.
func (s *Server) bootstrap(c *gin.Context) {
	var req wire.BootstrapRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	if len(req.Hosts) == 0 {
		s.abort(c, badRequestf("hosts: name at least one host, [user@]host[:port]"))
		return
	}
	if len(req.Hosts) > maxBootstrapHosts {
		s.abort(c, badRequestf("hosts: %d hosts; at most %d in one request", len(req.Hosts), maxBootstrapHosts))
		return
	}
	var ids []string
	if req.ID != "" {
		if len(req.Hosts) != 1 {
			s.abort(c, badRequestf("id: only with a single host (%d given)", len(req.Hosts)))
			return
		}
		if err := model.ValidID(req.ID); err != nil {
			s.abort(c, badRequest{err.Error()})
			return
		}
		ids = []string{req.ID}
	}
	if req.Port != 0 {
		if err := model.ValidPort(req.Port); err != nil {
			s.abort(c, badRequest{err.Error()})
			return
		}
	}
	if err := model.ValidKeyPath(req.Key); err != nil {
		s.abort(c, badRequest{err.Error()})
		return
	}
	jump, noJump, err := model.SSHJump(req.ProxyJump)
	if err != nil {
		s.abort(c, badRequestf("proxy_jump: %v", err))
		return
	}
	targets := make([]model.Target, 0, len(req.Hosts))
	seen := make(map[string]string, len(req.Hosts))
	for _, h := range req.Hosts {
		st, err := bootstrap.ParseHost(h, req.Port, req.Key)
		if err != nil {
			s.abort(c, badRequestf("hosts: %v", err))
			return
		}
		st.Become = req.Become
		st.Jump, st.NoJump = jump, noJump
		addr := net.JoinHostPort(st.Host, strconv.Itoa(st.Port))
		if prev, ok := seen[addr]; ok {
			s.abort(c, badRequestf("hosts: %q and %q are the same host", prev, h))
			return
		}
		seen[addr] = h
		targets = append(targets, model.Target{ID: h, SSH: &st})
	}
	if s.Bootstrap == nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "bootstrap is not available: the master runs without its SSH transport (see its log)"})
		return
	}
	s.Log.Info("bootstrap", "hosts", len(targets), "by", c.GetString(ctxToken))
	// A client that goes away must not leave hosts half installed: each
	// host is bounded by bootstrap.timeout instead.
	results := s.Bootstrap.Many(context.WithoutCancel(c.Request.Context()), targets, ids)
	fallback := req.SSHFallback == nil || *req.SSHFallback
	out := wire.BootstrapResponse{Results: make([]wire.BootstrapResult, 0, len(results))}
	for _, r := range results {
		w := wire.BootstrapResult{Host: r.Host, ID: r.ID, State: r.State, Action: r.Action,
			Arch: r.Arch, Init: r.Init, Fingerprint: r.Fingerprint, Reason: r.Reason}
		if fallback {
			w.SSHHost, w.Note = s.recordBootstrapped(context.WithoutCancel(c.Request.Context()), r, c.GetString(ctxToken))
		}
		out.Results = append(out.Results, w)
	}
	c.JSON(http.StatusOK, out)
}

// recordBootstrapped records a host bootstrapped with a login given (not
// from the agentless inventory) as an SSH host under its minion's id,
// through felix hosts add's path, so that exec can fall back to SSH when
// its minion is down. It returns the id recorded ("" when nothing was) and
// a note saying so or why not. A failed host, or one already in the
// inventory, is left alone; a known id is never replaced.
func (s *Server) recordBootstrapped(ctx context.Context, r bootstrap.Result, by string) (id, note string) {
	if r.State != bootstrap.StateOK || r.Login == nil || r.ID == "" {
		return "", ""
	}
	req := wire.HostRequest{ID: r.ID, Host: r.Login.Host, Port: r.Login.Port, User: r.Login.User,
		Key: r.Login.KeyPath, Become: r.Login.Become, ProxyJump: model.FormatProxyJump(r.Login.Jump)}
	if r.Login.NoJump {
		req.ProxyJump = model.ProxyJumpNone
	}
	if _, _, err := s.putHost(ctx, req, false, by); err != nil {
		s.Log.Warn("bootstrap: host not recorded as an SSH host", "id", r.ID, "host", r.Login.Host, "err", err)
		if errors.Is(err, inventory.ErrConflict) {
			return "", fmt.Sprintf("not recorded as SSH host: %s is already an agentless host (left as it is)", r.ID)
		}
		return "", fmt.Sprintf("not recorded as SSH host: %v", err)
	}
	return r.ID, "recorded as SSH host " + r.ID
}
