package agent

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/felix-ops/felix/exec"
	"github.com/felix-ops/felix/exec/local"
	"github.com/felix-ops/felix/facts"
	"github.com/felix-ops/felix/pki"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// Server is the minion side of the transport: it runs what the master asks.
type Server struct {
	felixv1.UnimplementedMinionServer
	ID      string
	Version string
	Log     *slog.Logger
	started time.Time
}

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
	)
	felixv1.RegisterMinionServer(g, srv)
	return g
}

// Ping answers with the minion's id, version and uptime.
func (s *Server) Ping(ctx context.Context, _ *felixv1.PingRequest) (*felixv1.PingResponse, error) {
	return &felixv1.PingResponse{Id: s.ID, Version: s.Version, Uptime: durationpb.New(time.Since(s.started))}, nil
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
	ctx := stream.Context()
	if err := stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Started{Started: &felixv1.Started{}}}); err != nil {
		return err
	}
	cmd := exec.Command{Line: req.CmdLine, Env: req.Env, Dir: req.Cwd, Timeout: req.Timeout.AsDuration()}
	var mu sync.Mutex // a stream's Send is not safe for concurrent use
	var sendErr error
	out := func(st exec.Stream, p []byte) {
		ps := felixv1.Stream_STREAM_STDOUT
		if st == exec.Stderr {
			ps = felixv1.Stream_STREAM_STDERR
		}
		mu.Lock()
		defer mu.Unlock()
		if sendErr == nil {
			sendErr = stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Output{
				Output: &felixv1.OutputChunk{Stream: ps, Data: p}}})
		}
	}
	s.Log.Info("exec", "job", req.JobId, "cmd", req.CmdLine)
	exit, err := local.Run(ctx, cmd, out)
	st := &felixv1.ExitStatus{ExitCode: int32(exit.Code), Signal: exit.Signal, Duration: durationpb.New(exit.Duration),
		TimedOut: exit.TimedOut}
	if err != nil {
		st.ExitCode, st.Error = -1, err.Error()
	}
	s.Log.Info("exec done", "job", req.JobId, "exit", exit.Code, "signal", exit.Signal, "timed_out", exit.TimedOut,
		"duration", exit.Duration)
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil {
		return sendErr
	}
	return stream.Send(&felixv1.ExecEvent{Event: &felixv1.ExecEvent_Exit{Exit: st}})
}
