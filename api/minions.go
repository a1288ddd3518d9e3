package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
)

func (s *Server) register(c *gin.Context) {
	if !s.authGuard(c) {
		return
	}
	// The slot is taken before the body is read: a registration in flight
	// is one whose body is being read, checked or stored.
	if s.regSlots != nil {
		select {
		case s.regSlots <- struct{}{}:
			defer func() { <-s.regSlots }()
			s.regRetry.admit()
		default:
			c.Header("Retry-After", strconv.Itoa(s.regRetry.refuse()))
			c.AbortWithStatusJSON(http.StatusTooManyRequests, gin.H{"error": "too many minion registrations in flight; retry after Retry-After seconds"})
			return
		}
	}
	var req model.RegisterRequest
	// A minion without addresses or facts sends them as null. Fields this
	// master does not know are ignored, not refused: a minion may run a
	// newer version than its master (upgraded first, or rolled out by
	// hand), and a refused registration would roll its upgrade back.
	if err := decodeWith(c, &req, maxBody, false, "ips", "facts"); err != nil {
		s.abort(c, err)
		return
	}
	if err := model.ValidID(req.ID); err != nil {
		s.abort(c, badRequest{err.Error()})
		return
	}
	c.Set(ctxAuditWho, "minion:"+req.ID)
	if req.Hostname == "" {
		req.Hostname = req.ID
	}
	if err := printable("hostname", req.Hostname, 253); err != nil {
		s.abort(c, err)
		return
	}
	if err := printable("version", req.Version, 64); err != nil {
		s.abort(c, err)
		return
	}
	if len(req.IPs) > 1024 {
		s.abort(c, badRequestf("ips: %d addresses; at most 1024", len(req.IPs)))
		return
	}
	for _, ip := range req.IPs {
		if net.ParseIP(ip) == nil {
			s.abort(c, badRequestf("ips: %q is not an IP address", ip))
			return
		}
	}
	lastUpgrade, err := checkLastUpgrade(req.LastUpgrade)
	if err != nil {
		s.abort(c, err)
		return
	}
	addr, err := grpcAddr(req.GRPCAddr, c.Request.RemoteAddr)
	if err != nil {
		s.abort(c, badRequest{err.Error()})
		return
	}
	f, err := checkFacts(req.Facts)
	if err != nil {
		s.abort(c, err)
		return
	}
	// Only the facts felix knows are kept: a minion cannot report a key of
	// its choosing (tier=secret) and so match a filter meant for labels.
	if req.Facts, err = json.Marshal(f); err != nil {
		s.abort(c, err)
		return
	}
	_, fp, err := pki.ParseCertPEM([]byte(req.CertPEM))
	if err != nil {
		s.abort(c, badRequestf("cert_pem: %v", err))
		return
	}
	// Proof of possession: the TLS client certificate must be the one sent.
	if c.Request.TLS == nil || len(c.Request.TLS.PeerCertificates) == 0 ||
		pki.Fingerprint(c.Request.TLS.PeerCertificates[0].Raw) != fp {
		s.authFailed(c)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "register over TLS presenting the certificate in cert_pem as the client certificate"})
		return
	}
	reg := inventory.Registration{Minion: inventory.Minion{
		ID: req.ID, Hostname: req.Hostname, IPs: req.IPs, Addr: addr, Version: req.Version, OS: f.OS(),
		Facts: string(req.Facts), CertPEM: req.CertPEM, Fingerprint: fp, LastUpgrade: lastUpgrade,
	}}
	if req.JoinToken != "" {
		reg.JoinTokenHash = inventory.HashToken(req.JoinToken)
	}
	m, created, err := s.Store.Register(c.Request.Context(), reg, s.now())
	if err != nil {
		if errors.Is(err, inventory.ErrInvalidToken) {
			s.authFailed(c)
			err = fmt.Errorf("join token: %w (issue one with: master token join)", err)
		}
		s.abort(c, err)
		return
	}
	// A registration comes from a minion that (re)started: whatever
	// connection the master had cached for it (its old address, or the
	// same one backing off after failed dials) is dropped at once, so
	// the next call dials the new process instead of answering a stale
	// "connection refused" for seconds.
	if s.Forget != nil {
		s.Forget(m.ID)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	if m.State == model.KeyAccepted && s.CheckHealth != nil {
		s.CheckHealth(m.ID) // its gRPC server listens before it registers
	}
	s.Log.Info("minion registered", "id", m.ID, "state", m.State, "addr", m.Addr, "fingerprint", m.Fingerprint)
	c.JSON(status, model.RegisterResponse{ID: m.ID, State: m.State, Fingerprint: m.Fingerprint, Address: m.Addr})
}

// registerRetrySpread is the smallest spread (seconds) of the Retry-After a
// refused registration is told: drawn from 1 to the spread, so the refused
// do not all come back in the same second; the spread grows while
// refusals outnumber registrations (retrySpread).
const registerRetrySpread = 5

// checkLastUpgrade checks a registration's last_upgrade and returns it as
// the inventory keeps it (JSON, "" when absent).
func checkLastUpgrade(u *model.LastUpgrade) (string, error) {
	if u == nil {
		return "", nil
	}
	if u.State != model.UpgradeUpgraded && u.State != model.UpgradeRolledBack {
		return "", badRequestf("last_upgrade.state: %q; want upgraded or rolled_back", u.State)
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{{"last_upgrade.from", u.From, 64}, {"last_upgrade.to", u.To, 64}, {"last_upgrade.reason", u.Reason, 1024}} {
		if err := printable(f.name, f.v, f.max); err != nil {
			return "", err
		}
	}
	b, err := json.Marshal(u)
	return string(b), err
}

// maxFacts bounds the facts document a registration may send.
const maxFacts = 64 << 10

// checkFacts decodes a registration's facts ({} when null or absent) and
// checks every field: text printable and short, addresses addresses.
func checkFacts(raw json.RawMessage) (facts.Facts, error) {
	var f facts.Facts
	if len(raw) > maxFacts {
		return f, badRequestf("facts: %d bytes; at most %d", len(raw), maxFacts)
	}
	if len(raw) == 0 || string(raw) == "null" {
		return f, nil
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, badRequestf("facts: %v", err)
	}
	for _, t := range []struct{ name, v string }{{"hostname", f.Hostname}, {"os_name", f.OSName},
		{"os_version", f.OSVersion}, {"os_pretty", f.OSPretty}, {"kernel", f.Kernel}, {"arch", f.Arch}, {"system", f.System}} {
		if err := printable("facts: "+t.name, t.v, 256); err != nil {
			return f, err
		}
	}
	if len(f.IPs) > 1024 {
		return f, badRequestf("facts: ips: %d addresses; at most 1024", len(f.IPs))
	}
	for _, ip := range f.IPs {
		if net.ParseIP(ip) == nil {
			return f, badRequestf("facts: ips: %q is not an IP address", ip)
		}
	}
	if f.CPUs < 0 || f.UptimeSeconds < 0 {
		return f, badRequestf("facts: cpus and uptime_seconds must not be negative")
	}
	return f, nil
}

// printable refuses text that is too long or could rewrite an operator's
// terminal when shown in a table.
func printable(field, v string, maxLen int) error {
	if err := model.CheckText(field, v, maxLen); err != nil {
		return badRequest{err.Error()}
	}
	return nil
}

// grpcAddr works out the address the master dials: the minion's own when it
// names a host, else the address its request came from.
func grpcAddr(given, remote string) (string, error) {
	host, port, err := net.SplitHostPort(given)
	if err != nil {
		return "", fmt.Errorf("grpc_addr %q: want host:port or :port", given)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("grpc_addr %q: port must be 1-65535", given)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		rh, _, err := net.SplitHostPort(remote)
		if err != nil {
			return "", fmt.Errorf("grpc_addr %q names no host and the remote address %q is unusable", given, remote)
		}
		host = rh
	}
	if strings.ContainsAny(host, "/ \x00") {
		return "", fmt.Errorf("grpc_addr %q: bad host", given)
	}
	return net.JoinHostPort(host, port), nil
}

func (s *Server) listMinions(c *gin.Context) {
	ms, err := s.Store.Minions(c.Request.Context())
	if err != nil {
		s.abort(c, err)
		return
	}
	if q, given := c.GetQuery("state"); given {
		state := model.KeyState(q)
		switch state {
		case model.KeyPending, model.KeyAccepted, model.KeyRejected:
		default:
			s.abort(c, badRequestf("state %q: want pending, accepted or rejected", state))
			return
		}
		kept := ms[:0]
		for _, m := range ms {
			if m.State == state {
				kept = append(kept, m)
			}
		}
		ms = kept
	}
	visible, err := s.visibleHosts(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.MinionList{Minions: make([]wire.Minion, 0, len(ms))}
	for _, m := range ms {
		if visible == nil || visible(m.ID) {
			out.Minions = append(out.Minions, minionView(m, false))
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getMinion(c *gin.Context) {
	if s.hostHidden(c, c.Param("id"), "minion") {
		return
	}
	m, err := s.Store.Minion(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, minionView(m, true))
}

func (s *Server) deleteMinion(c *gin.Context) {
	id := c.Param("id")
	if err := s.Store.DeleteMinion(c.Request.Context(), id); err != nil {
		s.abort(c, err)
		return
	}
	if s.Forget != nil {
		s.Forget(id)
	}
	s.Log.Info("minion deleted", "id", id, "by", c.GetString(ctxToken))
	c.JSON(http.StatusOK, gin.H{"id": id, "deleted": true})
}

func (s *Server) setState(state model.KeyState) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.Param("id")
		if err := s.Store.SetMinionState(c.Request.Context(), id, state, s.now()); err != nil {
			s.abort(c, err)
			return
		}
		if state != model.KeyAccepted && s.Forget != nil {
			s.Forget(id)
		}
		if state == model.KeyAccepted && s.CheckHealth != nil {
			s.CheckHealth(id)
		}
		s.Log.Info("minion "+string(state), "id", id, "by", c.GetString(ctxToken))
		c.JSON(http.StatusOK, gin.H{"id": id, "state": state})
	}
}

func (s *Server) createJoinToken(c *gin.Context) {
	var req wire.JoinTokenRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	ttl := 24 * time.Hour
	if req.TTL != "" {
		d, err := time.ParseDuration(req.TTL)
		if err != nil || d < 0 {
			s.abort(c, badRequestf("ttl %q: want a duration such as 1h or 15m, or 0 for no expiry", req.TTL))
			return
		}
		ttl = d
	}
	if req.Uses < -1 {
		s.abort(c, badRequestf("uses must be -1 (unlimited), 0 (default) or more"))
		return
	}
	tok, exp, err := s.Store.CreateJoinToken(c.Request.Context(),
		inventory.JoinTokenSpec{AutoAccept: req.AutoAccept, TTL: ttl, Uses: req.Uses}, s.now())
	if err != nil {
		s.abort(c, err)
		return
	}
	resp := wire.JoinTokenResponse{Token: tok, AutoAccept: req.AutoAccept, Uses: req.Uses}
	if !exp.IsZero() {
		resp.ExpiresAt = &exp
	}
	c.JSON(http.StatusCreated, resp)
}

func minionView(m inventory.Minion, withFacts bool) wire.Minion {
	v := wire.Minion{ID: m.ID, Hostname: m.Hostname, IPs: m.IPs, Address: m.Addr, Version: m.Version, OS: m.OS,
		Fingerprint: m.Fingerprint, State: m.State, Health: m.Health, LastSeen: m.LastSeen,
		RegisteredAt: m.RegisteredAt, UpdatedAt: m.UpdatedAt, Labels: m.Labels}
	if withFacts {
		v.Facts = json.RawMessage(m.Facts)
	}
	if m.LastUpgrade != "" {
		var u model.LastUpgrade
		if json.Unmarshal([]byte(m.LastUpgrade), &u) == nil {
			v.LastUpgrade = &u
		}
	}
	return v
}

var labelKey = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$`)

// checkLabels checks a labels request (of a minion or a host): something
// to do, keys of letters, digits, '.', '_', '/', '-', printable values.
func checkLabels(set map[string]string, remove []string) error {
	if len(set) == 0 && len(remove) == 0 {
		return badRequestf("nothing to do: give set and/or remove")
	}
	if err := checkLabelSet(set); err != nil {
		return err
	}
	for _, k := range remove {
		if !labelKey.MatchString(k) {
			return badRequestf("label key %q: letters, digits, '.', '_', '/', '-'; at most 63", k)
		}
	}
	return nil
}

// checkLabelSet checks labels to set.
func checkLabelSet(set map[string]string) error {
	for k, v := range set {
		if !labelKey.MatchString(k) {
			return badRequestf("label key %q: letters, digits, '.', '_', '/', '-'; at most 63", k)
		}
		if err := printable("label "+k, v, 253); err != nil {
			return err
		}
	}
	return nil
}

// changeLabels reads a label change (wire.Labels), checks it and applies
// it to id with set; it reports whether it did, having answered otherwise.
func (s *Server) changeLabels(c *gin.Context, id string,
	set func(ctx context.Context, id string, set map[string]string, remove []string) error) bool {
	var req wire.Labels
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return false
	}
	if err := checkLabels(req.Set, req.Remove); err != nil {
		s.abort(c, err)
		return false
	}
	if err := set(c.Request.Context(), id, req.Set, req.Remove); err != nil {
		s.abort(c, err)
		return false
	}
	return true
}

func (s *Server) setLabels(c *gin.Context) {
	id := c.Param("id")
	if !s.changeLabels(c, id, s.Store.SetLabels) {
		return
	}
	m, err := s.Store.Minion(c.Request.Context(), id)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusOK, minionView(m, false))
}
