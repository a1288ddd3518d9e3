package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/inventory"
	"github.com/felix-ops/felix/jobs"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/transport"
)

// spec validates an exec request into a job spec. It does not look at the
// file content; exec stores that separately.
func (s *Server) spec(c *gin.Context, req wire.ExecRequest, uploaded bool) (model.JobSpec, error) {
	switch req.CmdType {
	case "":
		req.CmdType = model.CmdLine
	case model.CmdLine, model.CmdScript, model.CmdFile:
	default:
		return model.JobSpec{}, badRequestf("cmd_type %q: want line, script or file", req.CmdType)
	}
	if strings.TrimSpace(req.CmdLine) == "" {
		return model.JobSpec{}, badRequestf("cmd_line is empty")
	}
	if !utf8.ValidString(req.CmdLine) || strings.ContainsRune(req.CmdLine, 0) {
		return model.JobSpec{}, badRequestf("cmd_line must be UTF-8 text without NUL")
	}
	if len(req.CmdLine) > model.MaxCmdLine {
		return model.JobSpec{}, badRequestf("cmd_line is %d bytes: at most %d (send a longer program as a script)", len(req.CmdLine), model.MaxCmdLine)
	}
	spec := model.JobSpec{CmdType: req.CmdType, CmdLine: req.CmdLine}
	switch req.Shell {
	case "", "cmd", "powershell":
		spec.Shell = req.Shell
	default:
		return model.JobSpec{}, badRequestf("shell %q: want cmd or powershell (Windows minions; others run /bin/sh)", req.Shell)
	}
	if req.CmdType == model.CmdLine {
		if req.File != "" || uploaded || req.FileName != "" || req.FileEncoding != "" {
			return model.JobSpec{}, badRequestf("file, file_name and file_encoding are for cmd_type script or file")
		}
	} else {
		if req.File == "" && !uploaded {
			return model.JobSpec{}, badRequestf("file is required for cmd_type %s", req.CmdType)
		}
		if req.FileEncoding != "" && req.FileEncoding != "text" && req.FileEncoding != "base64" {
			return model.JobSpec{}, badRequestf("file_encoding %q: want text or base64", req.FileEncoding)
		}
		name := req.FileName
		if name == "" {
			first := strings.Fields(req.CmdLine)[0]
			if !strings.HasPrefix(first, "./") {
				return model.JobSpec{}, badRequestf("file_name is required unless cmd_line starts with ./NAME (it is %q)", first)
			}
			name = strings.TrimPrefix(first, "./")
		}
		if req.Cwd != "" {
			return model.JobSpec{}, badRequestf("cwd: a %s command runs in its own private directory", req.CmdType)
		}
		if model.CheckFileName(name) != nil {
			return model.JobSpec{}, badRequestf("file_name %q: want a plain file name (from file_name or the first word of cmd_line)", name)
		}
		spec.FileName = name
	}
	opts := req.JobOptions
	if req.MinionIP != "" {
		if net.ParseIP(req.MinionIP) == nil {
			return model.JobSpec{}, badRequestf("minion_ip %q is not an IP address", req.MinionIP)
		}
		opts.Targets = append(append([]string(nil), req.Targets...), req.MinionIP)
	}
	if err := s.jobOptions(c, opts, s.Config.DefaultTimeout, &spec); err != nil {
		return model.JobSpec{}, err
	}
	if len(req.Env) > model.MaxEnvVars {
		return model.JobSpec{}, badRequestf("env has %d variables: at most %d", len(req.Env), model.MaxEnvVars)
	}
	envBytes := 0
	for k, v := range req.Env {
		if envBytes += len(k) + len(v) + 1; envBytes > model.MaxEnvBytes {
			return model.JobSpec{}, badRequestf("env: names and values over %d bytes together", model.MaxEnvBytes)
		}
		if !model.ValidEnvName(k) {
			return model.JobSpec{}, badRequestf("env: %q is not a valid variable name", k)
		}
		if strings.ContainsRune(v, 0) {
			return model.JobSpec{}, badRequestf("env: value of %s contains NUL", k)
		}
		spec.Env = append(spec.Env, k+"="+v)
	}
	sort.Strings(spec.Env)
	if len(req.Cwd) > model.MaxPathLen {
		return model.JobSpec{}, badRequestf("cwd is %d bytes: at most %d", len(req.Cwd), model.MaxPathLen)
	}
	if strings.ContainsRune(req.Cwd, 0) || (req.Cwd != "" && !strings.HasPrefix(req.Cwd, "/")) {
		return model.JobSpec{}, badRequestf("cwd %q: want an absolute path", req.Cwd)
	}
	spec.Dir = req.Cwd
	return spec, nil
}

// jobOptions validates the fields every job request has into spec:
// targets, timeout (def when none), transport, batch, fail threshold,
// callback URL and the caller's id.
func (s *Server) jobOptions(c *gin.Context, o wire.JobOptions, def time.Duration, spec *model.JobSpec) error {
	if len(o.ID) > 256 || !utf8.ValidString(o.ID) {
		return badRequestf("id must be UTF-8 of at most 256 bytes")
	}
	spec.ClientID, spec.Batch, spec.FailThreshold = o.ID, o.Batch, o.FailThreshold
	if len(o.Targets) == 0 {
		return badRequestf("no targets: give targets (ids, globs, IPs, CIDRs, key=value) or minion_ip")
	}
	if len(o.Targets) > model.MaxTargets {
		return badRequestf("targets has %d entries: at most %d (select many hosts with a glob, a CIDR or a label)", len(o.Targets), model.MaxTargets)
	}
	for _, t := range o.Targets {
		if len(t) > model.MaxTargetLen {
			return badRequestf("targets: an entry of %d bytes (%.32q…): at most %d", len(t), t, model.MaxTargetLen)
		}
	}
	spec.Targets = append([]string(nil), o.Targets...)
	spec.Timeout = def
	if o.Timeout != "" {
		d, err := time.ParseDuration(o.Timeout)
		if err != nil || d <= 0 {
			return badRequestf("timeout %q: want a positive duration such as 30s", o.Timeout)
		}
		spec.Timeout = d
	}
	if s.Config.MaxTimeout > 0 && spec.Timeout > s.Config.MaxTimeout {
		return badRequestf("timeout %s is over the master's limit of %s", spec.Timeout, s.Config.MaxTimeout)
	}
	if err := model.ValidMode(o.Transport); err != nil {
		return badRequest{err.Error()}
	}
	spec.Transport = o.Transport
	if spec.Transport == "" {
		spec.Transport = model.ModeAuto
	}
	if err := model.ValidUser(o.SSHUser); err != nil {
		return badRequestf("ssh_user: %v", err)
	}
	spec.SSHUser, spec.Become = o.SSHUser, o.Become
	if err := model.ValidUser(o.BecomeUser); err != nil {
		return badRequestf("become_user: %v", err)
	}
	spec.BecomeUser = o.BecomeUser
	if err := model.ParseBatch(o.Batch); err != nil {
		return badRequest{err.Error()}
	}
	if o.FailThreshold < 0 {
		return badRequestf("fail_threshold must be 0 (none) or more")
	}
	if len(o.CallbackURL) > model.MaxCallbackURL {
		return badRequestf("callback_url is %d bytes: at most %d", len(o.CallbackURL), model.MaxCallbackURL)
	}
	if o.CallbackURL != "" {
		u, err := url.Parse(o.CallbackURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			return badRequestf("callback_url %q: want an http or https URL without credentials", o.CallbackURL)
		}
		if s.CheckCallback != nil {
			if err := s.CheckCallback(c.Request.Context(), o.CallbackURL); err != nil {
				return badRequestf("callback_url: %v", err)
			}
		}
		spec.CallbackURL = o.CallbackURL
	}
	return nil
}

// jobQuery reads the query parameters of a job request: wait (capped) and
// dry_run. A parameter given empty is refused like any other bad value,
// not taken for the default.
func (s *Server) jobQuery(c *gin.Context) (wait time.Duration, dry bool, err error) {
	if w, given := c.GetQuery("wait"); given {
		d, err := time.ParseDuration(w)
		if err != nil || d <= 0 {
			return 0, false, badRequestf("wait %q: want a positive duration such as 30s", w)
		}
		wait = min(d, max(s.Config.MaxTimeout, time.Minute))
	}
	if d, given := c.GetQuery("dry_run"); given {
		// A mistyped dry run must not run the command for real.
		v, err := strconv.ParseBool(d)
		if err != nil {
			return 0, false, badRequestf("dry_run %q: want true or false", d)
		}
		dry = v
	}
	return wait, dry, nil
}

// answerJob answers a submitted job: 202 at once, or with a wait the
// finished job (200; its first page of hosts, as GET /api/v1/jobs/{id}
// answers without parameters), or 202 when it is still running after the
// wait.
func (s *Server) answerJob(c *gin.Context, job inventory.Job, wait time.Duration) {
	auditJob(c, job)
	if wait > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), wait)
		defer cancel()
		if s.Jobs.Wait(ctx, job.ID) {
			s.writeJob(c, job.ID, http.StatusOK, firstPage)
			return
		}
		job.State = model.JobRunning // still running: the job goes on
	}
	c.Header("Location", "/api/v1/jobs/"+job.ID)
	c.JSON(http.StatusAccepted, wire.ExecAccepted{JobID: job.ID, ID: job.ClientID, State: job.State, Total: job.Total})
}

// execBodyLimit is the largest exec body: the file limit in base64 plus room.
func (s *Server) execBodyLimit() int64 {
	return s.Config.MaxFileSize/3*4 + 8<<20
}

func (s *Server) exec(c *gin.Context) {
	var req wire.ExecRequest
	upload := "" // content streamed to disk from a multipart request; owned here until Submit
	var uploadSize int64
	release := func() {} // the room a large JSON body holds (reserveBody) until its file is on disk
	defer func() {
		release()
		if upload != "" {
			os.Remove(upload)
		}
	}()
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt == "multipart/form-data" {
		var err error
		req, upload, uploadSize, err = s.readMultipart(c)
		if err != nil {
			s.abortUpload(c, err, "")
			return
		}
	} else {
		var ok bool
		if release, ok = s.reserveBody(c, s.execBodyLimit()); !ok {
			return
		}
		if err := decodeLimit(c, &req, s.execBodyLimit()); err != nil {
			s.abort(c, err)
			return
		}
	}
	wait, dry, err := s.jobQuery(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	spec, err := s.spec(c, req, upload != "")
	if err != nil {
		s.abort(c, err)
		return
	}
	if dry || req.DryRun {
		s.dryRun(c, spec)
		return
	}
	payload := ""
	if upload != "" {
		payload, spec.FileSize, upload = upload, uploadSize, ""
	} else if spec.CmdType != model.CmdLine {
		var content io.Reader = strings.NewReader(req.File)
		if req.FileEncoding == "base64" {
			content = base64.NewDecoder(base64.StdEncoding, strings.NewReader(req.File))
		}
		req.File = "" // the decoded copy goes to disk; drop the request's
		path, size, err := s.Jobs.StorePayload(content, s.Config.MaxFileSize)
		release()
		release = func() {}
		if err != nil {
			s.abortUpload(c, err, req.FileEncoding)
			return
		}
		payload, spec.FileSize = path, size
	}
	job, err := s.Jobs.Submit(c.Request.Context(), spec, payload)
	if err != nil {
		s.abort(c, err)
		return
	}
	s.answerJob(c, job, wait)
}

// readParts calls fn with the name and content of each part of a
// multipart/form-data body, in order, until fn fails or the parts end.
func readParts(c *gin.Context, fn func(name string, part io.Reader) error) error {
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return badRequestf("multipart body: %v", err)
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err
			}
			return badRequestf("multipart body: %v", err)
		}
		if err := fn(part.FormName(), part); err != nil {
			return err
		}
	}
}

// decodePart decodes the JSON request part of a multipart body strictly,
// nulls refused as in decode.
func decodePart(part io.Reader, v any, allowNull ...string) error {
	nulls := &nullScanner{allow: allowNull}
	dec := json.NewDecoder(io.TeeReader(io.LimitReader(part, maxBody), nulls))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) {
			return badRequestf("malformed JSON in the request part: %s", typeError(te))
		}
		return badRequestf("malformed JSON in the request part: %v", err)
	}
	return nulls.err
}

// abortUpload answers a failure to store a command's content.
func (s *Server) abortUpload(c *gin.Context, err error, encoding string) {
	var cie base64.CorruptInputError
	switch {
	case errors.Is(err, jobs.ErrTooLarge):
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": fmt.Sprintf("file: content over the limit of %d bytes", s.Config.MaxFileSize)})
	case errors.As(err, &cie):
		s.abort(c, badRequestf("file: bad base64 at byte %d", int64(cie)))
	case encoding == "base64" && errors.Is(err, io.ErrUnexpectedEOF):
		s.abort(c, badRequestf("file: truncated base64 (its length must be a multiple of 4, with = padding)"))
	default:
		s.abort(c, err)
	}
}

// readMultipart reads a multipart/form-data exec: a "request" part with the
// JSON request (without file), and a "file" part whose content is streamed
// straight to disk — the way to send large content without the master
// holding it in memory. It returns the stored content's path and size.
func (s *Server) readMultipart(c *gin.Context) (req wire.ExecRequest, path string, size int64, err error) {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.execBodyLimit())
	haveReq := false
	err = readParts(c, func(name string, part io.Reader) error {
		switch name {
		case "request":
			if haveReq {
				return badRequestf("multipart body: more than one request part")
			}
			haveReq = true
			return decodePart(part, &req)
		case "file":
			if path != "" {
				return badRequestf("multipart body: more than one file part")
			}
			var err error
			path, size, err = s.Jobs.StorePayload(part, s.Config.MaxFileSize)
			return err
		}
		return badRequestf("multipart body: unknown part %q; want request and file", name)
	})
	if err != nil {
		return req, path, size, err
	}
	if !haveReq {
		return req, path, size, badRequestf("multipart body: no request part")
	}
	if path != "" && req.File != "" {
		return req, path, size, badRequestf("give the content once: a file part or the file field, not both")
	}
	if path != "" && req.FileEncoding != "" {
		return req, path, size, badRequestf("file_encoding is for the file field; a file part is sent as is")
	}
	return req, path, size, nil
}

func (s *Server) dryRun(c *gin.Context, spec model.JobSpec) {
	targets, err := s.Jobs.DryRun(c.Request.Context(), spec)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.DryRun{Targets: spec.Targets, Hosts: make([]wire.DryRunHost, 0, len(targets))}
	for _, t := range targets {
		h := wire.DryRunHost{Host: t.ID, Address: t.Addr, State: "would run"}
		if t.Skip != "" {
			h.State, h.Error = string(t.Skip), t.Error
		} else {
			h.Transport, h.Fallback = transport.Plan(t)
		}
		out.Hosts = append(out.Hosts, h)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listJobs(c *gin.Context) {
	limit := 50
	if l, given := c.GetQuery("limit"); given {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			s.abort(c, badRequestf("limit %q: want 1 to 1000", l))
			return
		}
		limit = n
	}
	if st, given := c.GetQuery("state"); given {
		switch model.JobState(st) {
		case model.JobQueued, model.JobRunning, model.JobDone, model.JobCancelled:
		default:
			s.abort(c, badRequestf("state %q: want queued, running, done or cancelled", st))
			return
		}
	}
	f := inventory.JobFilter{State: model.JobState(c.Query("state")), ClientID: c.Query("id"), Before: c.Query("before"), Limit: limit + 1}
	if len(scopeOf(c)) > 0 {
		f.RequestedBy = c.GetString(ctxToken) // a scoped token sees its own jobs
	}
	list, err := s.Store.Jobs(c.Request.Context(), f)
	if err != nil {
		s.abort(c, err)
		return
	}
	out := wire.JobList{Jobs: make([]wire.Job, 0, len(list))}
	if len(list) > limit {
		list = list[:limit]
		out.Next = list[limit-1].ID
	}
	for _, j := range list {
		v := jobView(j, nil)
		v.Summary = j.Summary
		out.Jobs = append(out.Jobs, v)
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) cancelJob(c *gin.Context) {
	id := c.Param("id")
	if err := s.Jobs.Cancel(c.Request.Context(), id); err != nil {
		if errors.Is(err, jobs.ErrFinished) {
			c.AbortWithStatusJSON(http.StatusConflict, gin.H{"error": err.Error()})
			return
		}
		s.abort(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"job_id": id, "state": "cancelling"})
}

func (s *Server) rerunJob(c *gin.Context) {
	only, given := c.GetQuery("only")
	if given && only != "failed" {
		s.abort(c, badRequestf("only %q: want failed, or nothing for every host", only))
		return
	}
	job, err := s.Jobs.Rerun(c.Request.Context(), c.Param("id"), only == "failed")
	if err != nil {
		s.abort(c, err)
		return
	}
	auditJob(c, job)
	c.Header("Location", "/api/v1/jobs/"+job.ID)
	c.JSON(http.StatusAccepted, wire.ExecAccepted{JobID: job.ID, ID: job.ClientID, State: job.State, Total: job.Total})
}

// jobEvents streams a job's events as Server-Sent Events: "event: TYPE" and
// "data: JSON" per event, from the job's start, live until it ends.
func (s *Server) jobEvents(c *gin.Context) {
	id := c.Param("id")
	if _, err := s.Store.JobState(c.Request.Context(), id); err != nil {
		s.abort(c, err)
		return
	}
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-cache")
	c.Header("X-Accel-Buffering", "no")
	c.Status(http.StatusOK)
	w := c.Writer
	var mu sync.Mutex // serialises writes: events and keep-alives
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// A comment line now and then keeps proxies from closing a quiet stream.
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				mu.Lock()
				fmt.Fprint(w, ": keep-alive\n\n")
				w.Flush()
				mu.Unlock()
			}
		}
	}()
	err := s.Jobs.Events(c.Request.Context(), id, func(e model.Event) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, b); err != nil {
			return err
		}
		w.Flush()
		return nil
	})
	if err != nil && c.Request.Context().Err() == nil {
		s.Log.Warn("job events", "job", id, "err", err)
	}
	mu.Lock()
	fmt.Fprint(w, "event: end\ndata: {}\n\n")
	w.Flush()
	mu.Unlock()
}

func (s *Server) listDeliveries(c *gin.Context) {
	q, given := c.GetQuery("state")
	state := model.DeliveryState(q)
	if given {
		switch state {
		case model.DeliveryPending, model.DeliveryDelivered, model.DeliveryDead:
		default:
			s.abort(c, badRequestf("state %q: want pending, delivered or dead", state))
			return
		}
	}
	items, err := s.Store.Outbox(c.Request.Context(), inventory.OutboxFilter{State: state, JobID: c.Query("job")})
	if err != nil {
		s.abort(c, err)
		return
	}
	own := map[string]bool{} // a scoped token's view: the deliveries of its own jobs
	out := wire.DeliveryList{Deliveries: make([]wire.Delivery, 0, len(items))}
	for _, it := range items {
		if len(scopeOf(c)) > 0 {
			mine, seen := own[it.JobID]
			if !seen {
				who, err := s.Store.JobRequester(c.Request.Context(), it.JobID)
				mine = err == nil && who == c.GetString(ctxToken)
				own[it.JobID] = mine
			}
			if !mine {
				continue
			}
		}
		out.Deliveries = append(out.Deliveries, deliveryView(it))
	}
	c.JSON(http.StatusOK, out)
}

func deliveryView(it inventory.OutboxItem) wire.Delivery {
	d := wire.Delivery{EventID: it.EventID, Kind: it.Kind, JobID: it.JobID, URL: it.URL, State: it.State,
		Attempts: it.Attempts, LastError: it.LastError, CreatedAt: it.CreatedAt}
	if it.State == model.DeliveryPending {
		d.NextAt = &it.NextAt
	}
	if !it.DeliveredAt.IsZero() {
		d.DeliveredAt = &it.DeliveredAt
	}
	if it.Kind == inventory.KindSlack {
		d.URL = "(slack webhook)" // the webhook URL is a secret
	}
	return d
}
