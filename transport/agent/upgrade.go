package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/felix-ops/felix/model"
	felixv1 "github.com/felix-ops/felix/proto/felix/v1"
)

// SelfUpgrader is the minion's self-upgrade, which the Upgrade RPC hands a
// received binary to: satisfied by (*minion.Minion).Upgrade. It returns
// ErrSameVersion (wrapped or not, see Server.SameVersion) when staged is
// the running version.
type SelfUpgrader func(ctx context.Context, staged, wantSHA256 string) (newVersion string, err error)

// maxUpgradeSize bounds the binary an Upgrade accepts.
const maxUpgradeSize = 512 << 20

// Upgrade receives a new minion binary into the server's StageDir (inside
// the minion's data directory; the master never names a path), checks its
// size and sha256, and hands it to SelfUpgrade.
func (s *Server) Upgrade(stream grpc.ClientStreamingServer[felixv1.UpgradeRequest, felixv1.UpgradeResponse]) error {
	if s.SelfUpgrade == nil || s.StageDir == "" {
		return status.Error(codes.Unimplemented, "upgrade: this minion cannot upgrade itself")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	h := first.GetHeader()
	if h == nil {
		return status.Error(codes.InvalidArgument, "upgrade: the first message must be a header")
	}
	if h.Size <= 0 || h.Size > maxUpgradeSize || len(h.Sha256) != 64 {
		return status.Errorf(codes.InvalidArgument, "upgrade: bad size %d or sha256 %q", h.Size, h.Sha256)
	}
	if err := os.MkdirAll(s.StageDir, 0o700); err != nil {
		return status.Errorf(codes.Internal, "upgrade: make %s: %v", s.StageDir, err)
	}
	staged := filepath.Join(s.StageDir, "minion-"+h.Sha256[:16]+".new")
	if err := receiveBinary(stream, staged, h.Size, h.Sha256); err != nil {
		os.Remove(staged)
		s.Log.Warn("upgrade refused: receiving the binary failed", "err", err)
		return err
	}
	s.Log.Info("upgrade: binary received", "size", h.Size, "sha256", h.Sha256)
	v, err := s.SelfUpgrade(stream.Context(), staged, h.Sha256)
	if err != nil && s.SameVersion != nil && errors.Is(err, s.SameVersion) {
		os.Remove(staged)
		return stream.SendAndClose(&felixv1.UpgradeResponse{Version: s.Version, Unchanged: true})
	}
	if err != nil {
		os.Remove(staged)
		s.Log.Warn("upgrade refused", "err", err)
		return status.Errorf(codes.FailedPrecondition, "upgrade: %v", err)
	}
	return stream.SendAndClose(&felixv1.UpgradeResponse{Version: v})
}

// receiveBinary writes the data messages of stream into a new file at
// path until the client closes its side; the content must be exactly size
// bytes with that sha256. The file is fsynced.
func receiveBinary(stream grpc.ClientStreamingServer[felixv1.UpgradeRequest, felixv1.UpgradeResponse], path string, size int64, sum string) error {
	os.Remove(path) // a previous try's
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o700)
	if err != nil {
		return status.Errorf(codes.Internal, "upgrade: create %s: %v", path, err)
	}
	defer f.Close()
	h := sha256.New()
	err = receiveChunks(io.MultiWriter(f, h), size, "upgrade", func() ([]byte, bool, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, false, err
		}
		d, ok := m.Msg.(*felixv1.UpgradeRequest_Data)
		if !ok {
			return nil, false, nil
		}
		return d.Data, true, nil
	})
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return status.Errorf(codes.InvalidArgument, "upgrade: sha256 mismatch: got %s, want %s", got, sum)
	}
	if err := f.Sync(); err != nil {
		return status.Errorf(codes.Internal, "upgrade: sync %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		return status.Errorf(codes.Internal, "upgrade: write %s: %v", path, err)
	}
	return nil
}

// Upgrade streams bin to the minion, which swaps itself and re-executes
// shortly after answering. It returns the version the minion will run, and
// unchanged when it already ran that version (nothing swapped). An error
// wrapping exec.ErrUnreachable means nothing was sent.
func (p *Pool) Upgrade(ctx context.Context, t model.Target, bin model.UpgradeBinary) (version string, unchanged bool, err error) {
	cl, release, err := p.client(ctx, t)
	if err != nil {
		return "", false, err
	}
	defer release()
	op := "upgrade"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cl.Upgrade(ctx)
	if err != nil {
		return "", false, rpcError(op, t, err, true)
	}
	err = stream.Send(&felixv1.UpgradeRequest{Msg: &felixv1.UpgradeRequest_Header{Header: &felixv1.UpgradeHeader{Size: bin.Size, Sha256: bin.SHA256}}})
	if err != nil && err != io.EOF {
		return "", false, rpcError(op, t, err, true)
	}
	r, err := bin.Open()
	if err != nil {
		return "", false, fmt.Errorf("upgrade minion %s: open %s: %w", t.ID, bin.Name, err)
	}
	defer r.Close()
	data := &felixv1.UpgradeRequest_Data{}
	msg := &felixv1.UpgradeRequest{Msg: data}
	sendErr := sendChunks(r, bin.Size, func(b []byte) error {
		data.Data = b
		return stream.Send(msg)
	})
	var readErr *fileReadError
	switch {
	case sendErr == nil, sendErr == io.EOF:
	case errors.As(sendErr, &readErr):
		cancel() // the minion must not take a partial binary
		return "", false, fmt.Errorf("upgrade minion %s: %s: %w (nothing swapped)", t.ID, bin.Name, sendErr)
	default:
		return "", false, rpcError(op, t, sendErr, false)
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return "", false, rpcError(op, t, err, false)
	}
	return resp.Version, resp.Unchanged, nil
}

// Info pings the minion and returns what it says of itself.
func (p *Pool) Info(ctx context.Context, t model.Target) (model.MinionInfo, error) {
	cl, release, err := p.client(ctx, t)
	if err != nil {
		return model.MinionInfo{}, err
	}
	defer release()
	resp, err := cl.Ping(ctx, &felixv1.PingRequest{})
	if err != nil {
		return model.MinionInfo{}, rpcError("ping", t, err, true)
	}
	return model.MinionInfo{Version: resp.Version, BinarySHA256: resp.BinarySha256, Uptime: resp.Uptime.AsDuration().Milliseconds()}, nil
}
