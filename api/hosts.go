package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/inventory/hostlist"
	"github.com/felix-ops/felix/model"
)

// HostKeys records SSH host keys the operator confirmed; satisfied by the
// master's adapter of *ssh.Pool. Trust connects to the host, checks that
// its key has the fingerprint given, and records it. A key that does not
// match (or differs from the recorded one) is an error wrapping
// ErrHostKey; any other error means the host could not be asked.
type HostKeys interface {
	Trust(ctx context.Context, t model.Target, fingerprint string) error
}

// ErrHostKey marks a host key that is not the one the operator confirmed
// (400); the api package does not import the SSH transport itself.
var ErrHostKey = errors.New("host key mismatch")

// trustTimeout bounds one trust request's connection to the host.
const trustTimeout = 30 * time.Second

// hostFromRequest validates a host request into an inventory host. Every
// field is checked before anything connects anywhere or is stored.
func hostFromRequest(req wire.HostRequest) (inventory.Host, error) {
	if err := model.ValidHost(req.Host); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	if req.ID == "" {
		req.ID = req.Host
		if err := model.ValidID(req.ID); err != nil {
			return inventory.Host{}, badRequestf("id: host %q is not a valid id; give one (letters, digits, '.', '-', '_')", req.Host)
		}
	}
	if err := model.ValidID(req.ID); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	if req.Port == 0 {
		req.Port = model.DefaultSSHPort
	}
	if err := model.ValidPort(req.Port); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	if err := model.ValidUser(req.User); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	if err := model.ValidUser(req.BecomeUser); err != nil {
		return inventory.Host{}, badRequestf("become_user: %v", err)
	}
	if err := model.ValidKeyPath(req.Key); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	if err := model.ValidRemoteTmp(req.RemoteTmp); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	if err := checkLabelSet(req.Labels); err != nil {
		return inventory.Host{}, err
	}
	if _, err := model.ParseProxyJump(req.ProxyJump); err != nil {
		return inventory.Host{}, badRequest{err.Error()}
	}
	return inventory.Host{ID: req.ID, Address: req.Host, Port: req.Port, User: req.User, KeyPath: req.Key,
		Become: req.Become || req.BecomeUser != "", Labels: req.Labels, RemoteTmp: req.RemoteTmp, ProxyJump: req.ProxyJump,
		BecomeUser: req.BecomeUser}, nil
}

func hostView(h inventory.Host, minionState model.KeyState) wire.Host {
	v := wire.Host{ID: h.ID, Host: h.Address, Port: h.Port, User: h.User, Key: h.KeyPath, Become: h.Become,
		Labels: h.Labels, Minion: minionState, CreatedAt: h.CreatedAt, UpdatedAt: h.UpdatedAt, RemoteTmp: h.RemoteTmp, ProxyJump: h.ProxyJump}
	v.BecomeUser = h.BecomeUser
	v.Groups, v.FactsError = h.Groups, h.Facts.Error
	if h.Facts.JSON != "" {
		v.Facts, v.FactsGatheredAt = json.RawMessage(h.Facts.JSON), &h.Facts.GatheredAt
	}
	return v
}

// minionState returns the state of the minion with id, "" when none.
func (s *Server) minionState(ctx context.Context, id string) (model.KeyState, error) {
	m, err := s.Store.Minion(ctx, id)
	if errors.Is(err, inventory.ErrNotFound) {
		return "", nil
	}
	return m.State, err
}

// putHost validates and stores one agentless host, as felix hosts add
// does (bootstrap records its hosts through it too); by names the token
// for the log. A known id is ErrConflict unless replace.
func (s *Server) putHost(ctx context.Context, req wire.HostRequest, replace bool, by string) (h inventory.Host, created bool, err error) {
	if h, err = hostFromRequest(req); err != nil {
		return h, false, err
	}
	if created, err = s.Store.AddHost(ctx, h, replace, s.now()); err != nil {
		return h, false, err
	}
	s.Log.Info("host added", "id", h.ID, "host", h.Address, "port", h.Port, "replaced", !created, "by", by)
	return h, created, nil
}

func (s *Server) addHost(c *gin.Context) {
	var req wire.HostRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	replace := false
	if r, given := c.GetQuery("replace"); given {
		v, err := strconv.ParseBool(r)
		if err != nil {
			s.abort(c, badRequestf("replace %q: want true or false", r))
			return
		}
		replace = v
	}
	h, created, err := s.putHost(c.Request.Context(), req, replace, c.GetString(ctxToken))
	if err != nil {
		if errors.Is(err, inventory.ErrConflict) {
			err = fmt.Errorf("%w (replace it with ?replace=true, felix hosts add --replace)", err)
		}
		s.abort(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	s.writeHost(c, h.ID, status)
}

// writeHost answers with the stored host id.
func (s *Server) writeHost(c *gin.Context, id string, status int) {
	ctx := c.Request.Context()
	h, err := s.Store.Host(ctx, id)
	if err != nil {
		s.abort(c, err)
		return
	}
	st, err := s.minionState(ctx, id)
	if err != nil {
		s.abort(c, err)
		return
	}
	c.JSON(status, hostView(h, st))
}

func (s *Server) listHosts(c *gin.Context) {
	ctx := c.Request.Context()
	hs, err := s.Store.Hosts(ctx)
	if err != nil {
		s.abort(c, err)
		return
	}
	ms, err := s.Store.Minions(ctx)
	if err != nil {
		s.abort(c, err)
		return
	}
	states := make(map[string]model.KeyState, len(ms))
	for _, m := range ms {
		states[m.ID] = m.State
	}
	visible, err := s.visibleHosts(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.HostList{Hosts: make([]wire.Host, 0, len(hs))}
	for _, h := range hs {
		if visible == nil || visible(h.ID) {
			out.Hosts = append(out.Hosts, hostView(h, states[h.ID]))
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getHost(c *gin.Context) {
	if s.hostHidden(c, c.Param("id"), "host") {
		return
	}
	s.writeHost(c, c.Param("id"), http.StatusOK)
}

func (s *Server) deleteHost(c *gin.Context) {
	id := c.Param("id")
	if err := s.Store.DeleteHost(c.Request.Context(), id); err != nil {
		s.abort(c, err)
		return
	}
	s.Log.Info("host deleted", "id", id, "by", c.GetString(ctxToken))
	c.JSON(http.StatusOK, gin.H{"id": id, "deleted": true})
}

func (s *Server) setHostLabels(c *gin.Context) {
	id := c.Param("id")
	if s.changeLabels(c, id, s.Store.SetHostLabels) {
		s.writeHost(c, id, http.StatusOK)
	}
}

// importHosts stores the hosts of a text inventory (see
// hostlist.ParseFormat: ?format=ini, yaml or roster, detected when
// absent), all or none. Every 400 is an ImportResult: any bad line is listed in
// Errors (the first few also in Error); a body that is no inventory at all
// has only Error.
func (s *Server) importHosts(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, maxBody))
	if err != nil {
		s.abort(c, err)
		return
	}
	if !utf8.Valid(body) {
		var bad []wire.ImportError
		for i, line := range strings.Split(string(body), "\n") {
			if !utf8.ValidString(line) {
				bad = append(bad, wire.ImportError{Line: i + 1, Error: "not UTF-8 text"})
			}
		}
		badImport(c, bad, "the inventory is not UTF-8 text")
		return
	}
	format := c.Query("format")
	if err := hostlist.ValidFormat(format); err != nil {
		badImport(c, nil, err.Error())
		return
	}
	parsed, bad := hostlist.ParseFormat(string(body), format)
	if len(bad) == 0 && len(parsed) == 0 {
		badImport(c, nil, "the inventory names no host")
		return
	}
	if len(bad) > 0 {
		errs := make([]wire.ImportError, len(bad))
		msgs := make([]string, 0, 3)
		for i, e := range bad {
			errs[i] = wire.ImportError{Line: e.Line, Error: e.Reason}
			if i < 3 {
				msgs = append(msgs, e.Error())
			}
		}
		msg := strings.Join(msgs, "; ")
		if len(bad) > 3 {
			msg += fmt.Sprintf("; and %d more bad lines", len(bad)-3)
		}
		badImport(c, errs, msg)
		return
	}
	hosts := make([]inventory.Host, len(parsed))
	for i, h := range parsed {
		hosts[i] = inventory.Host{ID: h.ID, Address: h.Address, Port: h.Port, User: h.User, KeyPath: h.KeyPath, Become: h.Become,
			RemoteTmp: h.RemoteTmp, ProxyJump: h.ProxyJump, BecomeUser: h.BecomeUser}
		if h.Group != "" {
			hosts[i].Labels = map[string]string{"group": h.Group}
		}
		hosts[i].Groups = h.Groups
	}
	added, updated, err := s.Store.ImportHosts(c.Request.Context(), hosts, s.now())
	if err != nil {
		s.abort(c, err)
		return
	}
	s.Log.Info("hosts imported", "added", added, "updated", updated, "by", c.GetString(ctxToken))
	c.JSON(http.StatusOK, wire.ImportResult{Added: added, Updated: updated, Errors: []wire.ImportError{}})
}

// badImport answers an import that stored nothing: 400 with the bad lines.
func badImport(c *gin.Context, bad []wire.ImportError, msg string) {
	if bad == nil {
		bad = []wire.ImportError{}
	}
	c.AbortWithStatusJSON(http.StatusBadRequest, wire.ImportResult{Errors: bad, Error: msg + "; nothing imported"})
}

// trustHost records the key of a host (by inventory id, or an address not
// in the inventory, e.g. one to bootstrap) after checking it has the
// fingerprint the operator confirmed. Everything is validated before the
// master connects to the host.
func (s *Server) trustHost(c *gin.Context) {
	var req wire.TrustRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	fp, err := model.ValidFingerprint(req.Fingerprint)
	if err != nil {
		s.abort(c, badRequest{err.Error()})
		return
	}
	if req.Port != 0 {
		if err := model.ValidPort(req.Port); err != nil {
			s.abort(c, badRequest{err.Error()})
			return
		}
	}
	id := c.Param("id")
	ctx := c.Request.Context()
	h, err := s.Store.Host(ctx, id)
	switch {
	case err == nil:
	case errors.Is(err, inventory.ErrNotFound):
		if err := model.ValidHost(id); err != nil {
			s.abort(c, badRequestf("%v (and no host has that id)", err))
			return
		}
		h = inventory.Host{ID: id, Address: id, Port: model.DefaultSSHPort}
	default:
		s.abort(c, err)
		return
	}
	if req.Port != 0 {
		h.Port = req.Port
	}
	if s.SSH == nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "the master runs without an ssh transport; see its log"})
		return
	}
	t := model.Target{ID: h.ID, Addr: net.JoinHostPort(h.Address, strconv.Itoa(h.Port)),
		SSH: &model.SSHTarget{Host: h.Address, Port: h.Port, User: h.User, KeyPath: h.KeyPath, Labels: h.Labels}}
	if t.SSH.Jump, t.SSH.NoJump, err = model.SSHJump(h.ProxyJump); err != nil {
		s.abort(c, fmt.Errorf("host %s: proxy_jump: %w", h.ID, err))
		return
	}
	tctx, cancel := context.WithTimeout(ctx, trustTimeout)
	defer cancel()
	if err := s.SSH.Trust(tctx, t, fp); err != nil {
		if errors.Is(err, ErrHostKey) {
			s.abort(c, badRequestf("trust %s: %v", t.Addr, err))
			return
		}
		c.AbortWithStatusJSON(http.StatusBadGateway, gin.H{"error": fmt.Sprintf("trust %s: %v", t.Addr, err)})
		return
	}
	s.Log.Info("host key trusted", "id", h.ID, "addr", t.Addr, "fingerprint", fp, "by", c.GetString(ctxToken))
	c.JSON(http.StatusOK, wire.Trusted{ID: h.ID, Host: h.Address, Port: h.Port, Fingerprint: fp})
}

// refreshHostFacts gathers again, over SSH, the facts of the hosts the
// targets select, and answers each host's facts or why they could not be
// gathered. It is synchronous: each host is bounded (jobs.RefreshFacts).
func (s *Server) refreshHostFacts(c *gin.Context) {
	var req wire.HostFactsRequest
	if err := decode(c, &req); err != nil {
		s.abort(c, err)
		return
	}
	if len(req.Targets) == 0 {
		s.abort(c, badRequestf("targets: name at least one (an id, glob, address or key=value filter)"))
		return
	}
	res, err := s.Jobs.RefreshFacts(c.Request.Context(), req.Targets)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.HostFactsList{Hosts: make([]wire.HostFacts, len(res))}
	for i, r := range res {
		out.Hosts[i] = wire.HostFacts{ID: r.ID, Error: r.Error}
		if r.Facts.JSON != "" {
			out.Hosts[i].Facts, out.Hosts[i].GatheredAt = json.RawMessage(r.Facts.JSON), &r.Facts.GatheredAt
		}
	}
	s.Log.Info("host facts gathered", "targets", strings.Join(req.Targets, ","), "hosts", len(res), "by", c.GetString(ctxToken))
	c.JSON(http.StatusOK, out)
}
