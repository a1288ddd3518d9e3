package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/felix-ops/felix/api/wire"
	"github.com/felix-ops/felix/content"
	"github.com/felix-ops/felix/model"
)

// Contents is the master's content store as the API uses it; satisfied by
// *content.Store.
type Contents interface {
	Put(r io.Reader, wantSHA string) (content.Blob, error)
	Open(sha string) (*os.File, content.Blob, error)
	Stat(sha string) (content.Blob, error)
}

// putContent stores the request body (POST /api/v1/content), verified
// against ?sha256= when given: 201 with the blob, or 200 when the content
// that ?sha256= names was stored already.
func (s *Server) putContent(c *gin.Context) {
	if s.Content == nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "the master has no content store"})
		return
	}
	s.allowLongUpload(c)
	want, given := c.GetQuery("sha256")
	if given && !content.ValidSHA(want) {
		s.abort(c, badRequestf("sha256 %q: want 64 lower-case hex digits", want))
		return
	}
	status := http.StatusCreated
	if want != "" {
		if _, err := s.Content.Stat(want); err == nil {
			status = http.StatusOK
		}
	}
	b, err := s.Content.Put(c.Request.Body, want)
	if err != nil {
		s.abortContent(c, err)
		return
	}
	c.JSON(status, wire.Blob{SHA256: b.SHA256, Size: b.Size})
}

// getContent streams a blob (GET and HEAD /api/v1/content/{sha256}).
func (s *Server) getContent(c *gin.Context) {
	if s.Content == nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "the master has no content store"})
		return
	}
	sum := c.Param("sha256")
	if !content.ValidSHA(sum) {
		s.abort(c, badRequestf("sha256 %q: want 64 lower-case hex digits", sum))
		return
	}
	f, b, err := s.Content.Open(sum)
	if err != nil {
		s.abortContent(c, err)
		return
	}
	defer f.Close()
	c.Header("Content-Length", strconv.FormatInt(b.Size, 10))
	c.Header("Content-Type", "application/octet-stream")
	c.Header("ETag", `"`+b.SHA256+`"`)
	c.Header("X-Felix-Sha256", b.SHA256)
	c.Status(http.StatusOK)
	if c.Request.Method == http.MethodHead {
		return
	}
	if _, err := io.Copy(c.Writer, f); err != nil {
		s.Log.Debug("send content", "sha256", sum, "err", err)
	}
}

// allowLongUpload lets a content upload take up to the files timeout
// instead of the server's read timeout, which bounds ordinary requests.
func (s *Server) allowLongUpload(c *gin.Context) {
	d := max(s.Config.FilesTimeout, time.Hour)
	if err := http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(d)); err != nil {
		s.Log.Debug("extend the read deadline of an upload", "err", err)
	}
}

// abortContent answers a content store error.
func (s *Server) abortContent(c *gin.Context, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, content.ErrTooLarge) || errors.As(err, &mbe):
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": err.Error()})
	case errors.Is(err, content.ErrFull):
		c.AbortWithStatusJSON(http.StatusInsufficientStorage, gin.H{"error": err.Error()})
	case errors.Is(err, content.ErrMismatch), errors.Is(err, content.ErrBadSHA):
		s.abort(c, badRequest{err.Error()})
	case errors.Is(err, content.ErrNotFound):
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": err.Error()})
	default:
		s.abort(c, err)
	}
}

// nullTargets may be null in a file job request: a Go client with no
// targets sends them so (wire.JobOptions), and gets the 400 "no targets".
const nullTargets = "targets"

// fileJob answers a file job request like exec: build reads the body
// into a spec and says whether the body asks for a dry run.
func (s *Server) fileJob(c *gin.Context, build func() (model.JobSpec, bool, error)) {
	if s.Content == nil {
		c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"error": "the master has no content store"})
		return
	}
	wait, dry, err := s.jobQuery(c)
	if err != nil {
		s.abort(c, err)
		return
	}
	spec, dryBody, err := build()
	if err != nil {
		s.abortContent(c, err)
		return
	}
	if dry || dryBody {
		s.dryRun(c, spec)
		return
	}
	s.submit(c, spec, wait)
}

// submit starts the job of spec (without content of its own) and answers
// it as answerJob does.
func (s *Server) submit(c *gin.Context, spec model.JobSpec, wait time.Duration) {
	job, err := s.Jobs.Submit(c.Request.Context(), spec, "")
	if err != nil {
		s.abort(c, err)
		return
	}
	s.answerJob(c, job, wait)
}

// pushFiles starts a push job (POST /api/v1/files): JSON naming stored
// content, or multipart with a "request" part and then the content as a
// "file" part.
func (s *Server) pushFiles(c *gin.Context) {
	s.fileJob(c, func() (model.JobSpec, bool, error) {
		if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt == "multipart/form-data" {
			s.allowLongUpload(c)
			return s.readPushMultipart(c)
		}
		var req wire.PushRequest
		if err := decode(c, &req, nullTargets); err != nil {
			return model.JobSpec{}, false, err
		}
		spec, err := s.pushSpec(c, req, "")
		return spec, req.DryRun, err
	})
}

// readPushMultipart reads a multipart push: the "request" part (JSON),
// then one "file" part streamed into the content store once the request
// has been checked. It returns the push's spec and whether the request
// asks for a dry run.
func (s *Server) readPushMultipart(c *gin.Context) (spec model.JobSpec, dry bool, err error) {
	var req wire.PushRequest
	haveReq := false
	sum := ""
	err = readParts(c, func(name string, part io.Reader) error {
		switch name {
		case "request":
			if haveReq {
				return badRequestf("multipart body: more than one request part")
			}
			haveReq = true
			return decodePart(part, &req, nullTargets)
		case "file":
			if sum != "" {
				return badRequestf("multipart body: more than one file part")
			}
			if !haveReq {
				return badRequestf("multipart body: the request part must come before the file part")
			}
			// A request that will be refused stores nothing: check it
			// (with a stand-in for the content's sha256) before the content.
			var err error
			if spec, err = s.pushSpec(c, req, strings.Repeat("0", 64)); err != nil {
				return err
			}
			b, err := s.Content.Put(part, "")
			if err != nil {
				return err
			}
			sum = b.SHA256
			spec.Push.Entries[0].SHA256 = sum
			return nil
		}
		return badRequestf("multipart body: unknown part %q; want request and file", name)
	})
	switch {
	case err != nil:
		return spec, false, err
	case !haveReq:
		return spec, false, badRequestf("multipart body: no request part")
	case sum == "":
		return spec, false, badRequestf("multipart body: no file part (send JSON naming stored content by sha256 instead)")
	}
	return spec, req.DryRun, nil
}

// pushSpec validates a push request into a job spec; uploaded is the
// sha256 of a file part, if there was one.
func (s *Server) pushSpec(c *gin.Context, req wire.PushRequest, uploaded string) (model.JobSpec, error) {
	spec := model.JobSpec{CmdType: model.CmdPush}
	if err := model.CheckHostPath(req.Dest); err != nil {
		return spec, badRequestf("dest: %v", err)
	}
	if err := checkOwner(req.Owner); err != nil {
		return spec, err
	}
	mode, err := model.ParseMode(req.Mode)
	if err != nil {
		return spec, badRequest{err.Error()}
	}
	push := &model.PushSpec{Dest: req.Dest, Owner: req.Owner, Mkdir: req.Mkdir, Backup: req.Backup, FollowSymlinks: req.FollowSymlinks}
	switch {
	case len(req.Entries) > 0:
		if uploaded != "" || req.SHA256 != "" || req.Mode != "" {
			return spec, badRequestf("a tree (entries) names each file's sha256 and mode in its entries; sha256, mode and a file part are for a single file")
		}
		for _, e := range req.Entries {
			es := model.EntrySpec{Path: e.Path, SHA256: e.SHA256, Link: e.Link}
			if es.Kind, err = model.ParseFileKind(e.Kind); err != nil {
				return spec, badRequestf("entry %q: %v", e.Path, err)
			}
			if es.Mode, err = model.ParseMode(e.Mode); err != nil {
				return spec, badRequestf("entry %q: %v", e.Path, err)
			}
			push.Entries = append(push.Entries, es)
		}
	case uploaded != "" && req.SHA256 != "":
		return spec, badRequestf("give the content once: a file part or sha256, not both")
	case uploaded != "" || req.SHA256 != "":
		sum := uploaded + req.SHA256
		if !content.ValidSHA(sum) {
			return spec, badRequestf("sha256 %q: want 64 lower-case hex digits", sum)
		}
		push.Entries = []model.EntrySpec{{Path: ".", Kind: model.KindFile, SHA256: sum, Mode: mode}}
	default:
		return spec, badRequestf("no content: give sha256 of stored content (POST /api/v1/content), a file part, or entries")
	}
	if err := s.jobOptions(c, req.JobOptions, s.Config.FilesTimeout, &spec); err != nil {
		return spec, err
	}
	spec.Push = push
	spec.CmdLine = "push " + req.Dest
	return spec, nil
}

// checkOwner accepts "", "user", "user:group", ":group" of plain names or
// numbers.
func checkOwner(owner string) error {
	if owner == "" {
		return nil
	}
	u, g, _ := strings.Cut(owner, ":")
	if u == "" && g == "" {
		return badRequestf("owner %q names neither user nor group", owner)
	}
	for _, n := range []string{u, g} {
		if len(n) > 64 || strings.HasPrefix(n, "-") || strings.ContainsFunc(n, func(r rune) bool {
			return !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) {
			return badRequestf("owner %q: want user:group names or numeric ids", owner)
		}
	}
	return nil
}

// fetchFiles starts a fetch job (POST /api/v1/fetch).
func (s *Server) fetchFiles(c *gin.Context) {
	s.fileJob(c, func() (model.JobSpec, bool, error) {
		var req wire.FetchRequest
		if err := decode(c, &req, nullTargets); err != nil {
			return model.JobSpec{}, false, err
		}
		spec := model.JobSpec{CmdType: model.CmdFetch, CmdLine: "fetch " + req.Path}
		if err := model.CheckHostPath(req.Path); err != nil {
			return spec, false, badRequestf("path: %v", err)
		}
		if err := s.jobOptions(c, req.JobOptions, s.Config.FilesTimeout, &spec); err != nil {
			return spec, false, err
		}
		spec.Fetch = &model.FetchSpec{Path: req.Path, FollowSymlinks: req.FollowSymlinks}
		return spec, req.DryRun, nil
	})
}
