package agent

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/felix-ops/felix/exec/local"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/hostfile"
	"github.com/felix-ops/felix/model"
	"github.com/felix-ops/felix/pki"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// Server is the minion side of the transport: it runs what the master asks.
type Server struct {
	felixv1.UnimplementedMinionServer
	ID      string
	Version string
	Log     *slog.Logger
	// MaxFileSize is the largest file ExecFile accepts; zero means
	// DefaultMaxFileSize.
	MaxFileSize int64
	// TempDir is where ExecFile makes each job's private directory; empty
	// means os.TempDir().
	TempDir string
	// Files does the work of PutFile and GetFile on the host: its Roots
	// are where they may touch, its journal what Sweep cleans after a
	// crash. Nil means a Store with no roots and no journal.
	Files *hostfile.Store
	// Run runs the commands of Exec and ExecFile; nil means local.Run
	// (/bin/sh -c in its own process group), the minion's only runner.
	// The swarm injects another to answer without forking (minion swarm
	// --exec=noop), so a benchmark measures the master alone.
	Run Runner
	// SelfUpgrade, StageDir and SameVersion serve the Upgrade RPC
	// (upgrade.go): the minion's self-upgrade, the directory of its data
	// directory a received binary is written to, and the error
	// SelfUpgrade returns for a binary at the running version. Nil or
	// empty: Upgrade is refused.
	SelfUpgrade SelfUpgrader
	StageDir    string
	SameVersion error
	// BinarySHA256 is the running binary's sha256, told in Ping.
	BinarySHA256 string
	started      time.Time
}

// Runner runs one command on the host, streaming its output to out; it has
// local.Run's contract (a non-zero exit is an Exit, an error means the
// command could not start).
type Runner func(ctx context.Context, cmd model.Command, out model.OutputFunc) (model.Exit, error)

// NewServer returns the minion service for the minion id.
func NewServer(id, version string, log *slog.Logger) *Server {
	return &Server{ID: id, Version: version, Log: log, started: time.Now()}
}

// NewGRPCServer returns a gRPC server that presents id and accepts only a
// client whose certificate fingerprint is what masterFingerprint returns at
// handshake time. Anyone else is refused during the TLS handshake, before any
// RPC.
func NewGRPCServer(id *pki.Identity, masterFingerprint func() string, srv felixv1.MinionServer) *grpc.Server {
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		// Any client certificate is asked for; VerifyConnection decides by pin.
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: pki.VerifyPinned(func(peer string) error { return pki.Match(masterFingerprint(), peer) }),
	}
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(cfg)),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 60 * time.Second, Timeout: 20 * time.Second}),
		// Writes of at most 4 KiB, so TLS records of at most 4 KiB: the
		// master keeps a buffer of its largest record per connection
		// (crypto/tls), 16 KiB records from thousands of minions printing
		// at once cost it ~40 KiB each for good.
		grpc.WriteBufferSize(recordSize),
	)
	felixv1.RegisterMinionServer(g, srv)
	return g
}

// outputChunk is the most output one message carries: with its framing it
// fits one HTTP/2 frame (16 KiB), which the master decodes in place; a
// message spread over frames is first copied into one buffer of gRPC's
// pool, a whole MiB for anything over 32 KiB.
const outputChunk = 16<<10 - 64

// recordSize is the size of the minion's writes, and so of its TLS
// records.
const recordSize = 4 << 10

// Ping answers with the minion's id, version and uptime.
func (s *Server) Ping(ctx context.Context, _ *felixv1.PingRequest) (*felixv1.PingResponse, error) {
	return &felixv1.PingResponse{Id: s.ID, Version: s.Version, Uptime: durationpb.New(time.Since(s.started)),
		BinarySha256: s.BinarySHA256}, nil
}

// Facts gathers the host's facts.
func (s *Server) Facts(ctx context.Context, _ *felixv1.FactsRequest) (*felixv1.FactsResponse, error) {
	f, err := facts.Gather(ctx)
	if err != nil {
		return nil, err
	}
	return &felixv1.FactsResponse{Hostname: f.Hostname, OsName: f.OSName, OsVersion: f.OSVersion, OsPretty: f.OSPretty,
		Kernel: f.Kernel, Arch: f.Arch, Cpus: int32(f.CPUs), MemoryBytes: f.MemoryBytes, Ips: f.IPs,
		UptimeSeconds: f.UptimeSeconds}, nil
}

// Exec runs the command in its own process group and streams its output. If
// the master goes away the stream's context ends and the group is killed.
func (s *Server) Exec(req *felixv1.ExecRequest, stream grpc.ServerStreamingServer[felixv1.ExecEvent]) error {
	s.Log.Info("exec", "job", req.JobId, "cmd", req.CmdLine)
	return s.run(stream.Context(), req.JobId, newCommand(req), req.Heartbeat.AsDuration(), stream, nil, nil)
}

// newCommand is the command an Exec request asks for.
func newCommand(req *felixv1.ExecRequest) model.Command {
	return model.Command{Line: req.CmdLine, Env: req.Env, Dir: req.Cwd, Timeout: req.Timeout.AsDuration(), Shell: req.Shell}
}

// ExecFile receives a file into a private directory made for this run,
// then runs the command there like Exec. Nothing runs unless the whole
// content arrived: exactly the announced size, followed by the client's
// close. The directory is removed before the exit status is sent, and on
// every failure.
func (s *Server) ExecFile(stream grpc.BidiStreamingServer[felixv1.ExecFileRequest, felixv1.ExecEvent]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	return s.execFile(stream.Context(), h, stream, nil, func() ([]byte, bool, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, false, err
		}
		d, ok := m.Msg.(*felixv1.ExecFileRequest_Data)
		if !ok {
			return nil, false, nil
		}
		return d.Data, true, nil
	})
}

// execFile checks h, receives the file from next into a private directory
// made for this run and runs h's command there (see ExecFile).
func (s *Server) execFile(ctx context.Context, h *felixv1.ExecFileHeader, stream execEvents, credit *outputCredit, next func() ([]byte, bool, error)) error {
	if h == nil || h.Exec == nil {
		return status.Error(codes.InvalidArgument, "exec file: the first message must be a header with the command")
	}
	req := h.Exec
	log := s.Log.With("job", req.JobId, "file", h.FileName)
	if err := model.CheckFileName(h.FileName); err != nil {
		log.Warn("exec file refused", "err", err)
		return status.Errorf(codes.InvalidArgument, "exec file: %v", err)
	}
	if limit := s.maxFileSize(); h.Size < 0 || h.Size > limit {
		log.Warn("exec file refused", "size", h.Size, "limit", limit)
		if h.Size < 0 {
			return status.Errorf(codes.InvalidArgument, "exec file: negative size %d", h.Size)
		}
		return status.Errorf(codes.ResourceExhausted, "exec file: %s is %d bytes, more than this minion's limit of %d",
			h.FileName, h.Size, limit)
	}

	dir, err := os.MkdirTemp(s.TempDir, "felix-job-*") // mode 0700
	if err != nil {
		return status.Errorf(codes.Internal, "exec file: make working directory: %v", err)
	}
	defer removeDir(log, dir)
	if err := receiveFile(next, filepath.Join(dir, h.FileName), h.Size); err != nil {
		log.Warn("exec file not run: receiving the file failed", "err", err)
		return err
	}

	cmd := model.Command{Line: req.CmdLine, Env: req.Env, Dir: dir, Timeout: req.Timeout.AsDuration(), FileName: h.FileName, Shell: req.Shell}
	log.Info("exec file", "size", h.Size, "dir", dir, "cmd", req.CmdLine)
	return s.run(ctx, req.JobId, cmd, req.Heartbeat.AsDuration(), stream, credit, func() { removeDir(log, dir) })
}

// DefaultMaxFileSize is the largest file ExecFile accepts when the Server's
// MaxFileSize is zero.
const DefaultMaxFileSize = 64 << 20

func (s *Server) maxFileSize() int64 {
	if s.MaxFileSize > 0 {
		return s.MaxFileSize
	}
	return DefaultMaxFileSize
}

// receiveFile writes the content next returns into a new file at path,
// executable by its owner only, until next reports its end (io.EOF). The
// content must be exactly size bytes.
func receiveFile(next func() (data []byte, ok bool, err error), path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return status.Errorf(codes.Internal, "exec file: create %s: %v", filepath.Base(path), err)
	}
	defer f.Close() // after the explicit Close below, on failures only
	if err := receiveChunks(f, size, "exec file", next); err != nil {
		return err
	}
	// The umask may have narrowed the mode given to OpenFile.
	if err := f.Chmod(0o700); err != nil {
		return status.Errorf(codes.Internal, "exec file: chmod %s: %v", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return status.Errorf(codes.Internal, "exec file: write %s: %v", filepath.Base(path), err)
	}
	return nil
}

// removeDir removes a job's working directory, logging a failure.
func removeDir(log *slog.Logger, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		log.Error("remove job directory", "dir", dir, "err", err)
	}
}

// Bounds of the heartbeat interval a master may ask for.
const (
	minHeartbeat = 500 * time.Millisecond
	maxHeartbeat = time.Minute
)

// run sends Started, runs cmd streaming its output, calls done (if any)
// once the command has ended, and sends the exit status. When the master
// asked for heartbeats (every heartbeat, bounded), Started says the
// interval kept and a Heartbeat goes out at it until the exit.
func (s *Server) run(ctx context.Context, jobID string, cmd model.Command, heartbeat time.Duration, stream execEvents, credit *outputCredit, done func()) error {
	started := &felixv1.Started{}
	if heartbeat > 0 {
		heartbeat = min(max(heartbeat, minHeartbeat), maxHeartbeat)
		started.Heartbeat = durationpb.New(heartbeat)
	}
	if err := stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Started{Started: started}}); err != nil {
		return err
	}
	var mu sync.Mutex // a stream's Send is not safe for concurrent use
	var sendErr error
	// send sends ev unless a send failed before; it says whether the
	// stream is still good.
	send := func(ev *felixv1.ExecEvent) bool {
		mu.Lock()
		defer mu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(ev)
		}
		return sendErr == nil
	}
	stopBeats := func() {}
	if heartbeat > 0 {
		stop := make(chan struct{})
		beats := sync.WaitGroup{}
		beats.Add(1)
		var once sync.Once
		stopBeats = func() { once.Do(func() { close(stop); beats.Wait() }) }
		defer stopBeats()
		go func() {
			defer beats.Done()
			t := time.NewTicker(heartbeat)
			defer t.Stop()
			beat := &felixv1.ExecEvent{Event: &felixv1.ExecEvent_Heartbeat{Heartbeat: &felixv1.Heartbeat{}}}
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				send(beat)
			}
		}()
	}
	// Output is sent one chunk at a time (stdout and stderr come from two
	// goroutines): with credit, all output granted then goes out before
	// the next CreditWanted, and one caller at a time waits for credit.
	var outMu sync.Mutex
	askCredit := func(want int) bool { // want is at most outputChunk
		return send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_CreditWanted{CreditWanted: &felixv1.CreditWanted{Bytes: uint32(want)}}})
	}
	out := func(st model.Stream, p []byte) {
		outMu.Lock()
		defer outMu.Unlock()
		ps := felixv1.Stream_STREAM_STDOUT
		if st == model.Stderr {
			ps = felixv1.Stream_STREAM_STDERR
		}
		for len(p) > 0 {
			n := min(len(p), outputChunk)
			if credit != nil {
				// Without credit (the stream ended) the rest is dropped:
				// nobody reads it.
				if n = credit.take(ctx, n, askCredit); n == 0 {
					return
				}
			}
			if !send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Output{Output: &felixv1.OutputChunk{Stream: ps, Data: p[:n]}}}) {
				return
			}
			p = p[n:]
		}
	}
	run := s.Run
	if run == nil {
		run = local.Run
	}
	exit, err := run(ctx, cmd, out)
	stopBeats() // no beat after the exit status
	if done != nil {
		done()
	}
	st := &felixv1.ExitStatus{ExitCode: int32(exit.Code), Signal: exit.Signal, Duration: durationpb.New(exit.Duration),
		TimedOut: exit.TimedOut}
	if err != nil {
		st.ExitCode, st.Error = -1, err.Error()
	}
	s.Log.Info("exec done", "job", jobID, "exit", exit.Code, "signal", exit.Signal, "timed_out", exit.TimedOut,
		"duration", exit.Duration)
	// A run ended for breaking the protocol (ExecFlow) ends with that
	// error, not an exit status.
	if cause := context.Cause(ctx); ctx.Err() != nil {
		if _, isStatus := status.FromError(cause); isStatus {
			return cause
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Exit{Exit: st}})
}

// receiveChunks writes the data messages next returns to w until the
// client closes its side (io.EOF); next says ok=false for a message that
// is not data. The content must be exactly size bytes; errors are gRPC
// statuses naming what (the RPC).
func receiveChunks(w io.Writer, size int64, what string, next func() (data []byte, ok bool, err error)) error {
	var n int64
	for {
		data, ok, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if !ok {
			return status.Errorf(codes.InvalidArgument, "%s: a second header", what)
		}
		if n+int64(len(data)) > size {
			return status.Errorf(codes.InvalidArgument, "%s: more content than the announced %d bytes", what, size)
		}
		if _, err := w.Write(data); err != nil {
			return status.Errorf(codes.Internal, "%s: write: %v", what, err)
		}
		n += int64(len(data))
	}
	if n != size {
		return status.Errorf(codes.InvalidArgument, "%s: truncated transfer: got %d bytes of the announced %d", what, n, size)
	}
	return nil
}
