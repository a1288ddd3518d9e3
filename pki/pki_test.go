package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var fingerprintRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Generating keys is cheap but not free: tests share identities made once.
var (
	sharedOnce sync.Once
	sharedA    *Identity
	sharedB    *Identity
	sharedErr  error
)

func testIdentities(t *testing.T) (a, b *Identity) {
	t.Helper()
	sharedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pki-test-")
		if err != nil {
			sharedErr = err
			return
		}
		defer os.RemoveAll(dir)
		if sharedA, sharedErr = LoadOrCreate(dir, "a", "a", nil); sharedErr != nil {
			return
		}
		sharedB, sharedErr = LoadOrCreate(dir, "b", "b", nil)
	})
	if sharedErr != nil {
		t.Fatalf("make identities: %v", sharedErr)
	}
	return sharedA, sharedB
}

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki") // does not exist yet
	id, err := LoadOrCreate(dir, "master", "felix-master", []string{"master.example", "10.1.2.3", ""})
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	for _, name := range []string{"master.crt", "master.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode = %v; want 0600", name, perm)
		}
	}
	if !fingerprintRE.MatchString(id.Fingerprint) {
		t.Errorf("Fingerprint = %q; want sha256:<64 lowercase hex>", id.Fingerprint)
	}
	sum := sha256.Sum256(id.Cert.Certificate[0])
	if want := "sha256:" + hex.EncodeToString(sum[:]); id.Fingerprint != want {
		t.Errorf("Fingerprint = %q; want sha256 of the DER %q", id.Fingerprint, want)
	}

	cert, fp, err := ParseCertPEM(id.CertPEM)
	if err != nil {
		t.Fatalf("ParseCertPEM(own certificate): %v", err)
	}
	if fp != id.Fingerprint {
		t.Errorf("ParseCertPEM fingerprint = %q; want %q", fp, id.Fingerprint)
	}
	if cert.Subject.CommonName != "felix-master" {
		t.Errorf("CommonName = %q; want felix-master", cert.Subject.CommonName)
	}
	if !slices.Equal(cert.DNSNames, []string{"master.example"}) {
		t.Errorf("DNSNames = %q; want [master.example]", cert.DNSNames)
	}
	if len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(net.ParseIP("10.1.2.3")) {
		t.Errorf("IPAddresses = %v; want [10.1.2.3]", cert.IPAddresses)
	}

	again, err := LoadOrCreate(dir, "master", "ignored", nil)
	if err != nil {
		t.Fatalf("LoadOrCreate again: %v", err)
	}
	if again.Fingerprint != id.Fingerprint {
		t.Errorf("second LoadOrCreate fingerprint = %q; want the first's %q", again.Fingerprint, id.Fingerprint)
	}
	if string(again.CertPEM) != string(id.CertPEM) {
		t.Errorf("second LoadOrCreate returned a different certificate")
	}

	other, err := LoadOrCreate(dir, "minion", "m", nil)
	if err != nil {
		t.Fatalf("LoadOrCreate other name: %v", err)
	}
	if other.Fingerprint == id.Fingerprint {
		t.Errorf("two identities share fingerprint %s", id.Fingerprint)
	}
}

func TestLoadOrCreateBrokenFiles(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
	}{
		{
			name: "key missing",
			setup: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "x.key")); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "key garbage",
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(filepath.Join(dir, "x.key"), []byte("garbage"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "key of another certificate",
			setup: func(t *testing.T, dir string) {
				if _, err := LoadOrCreate(dir, "y", "y", nil); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, "y.key"), filepath.Join(dir, "x.key")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, err := LoadOrCreate(dir, "x", "x", nil); err != nil {
				t.Fatalf("LoadOrCreate: %v", err)
			}
			tt.setup(t, dir)
			if _, err := LoadOrCreate(dir, "x", "x", nil); err == nil {
				t.Errorf("LoadOrCreate = nil error; want an error (and no silent new identity)")
			}
		})
	}
}

func TestParseFingerprint(t *testing.T) {
	a, _ := testIdentities(t)
	canon := a.Fingerprint
	bare := strings.TrimPrefix(canon, "sha256:")
	var pairs []string
	for i := 0; i < len(bare); i += 2 {
		pairs = append(pairs, bare[i:i+2])
	}
	colons := strings.Join(pairs, ":")

	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "canonical", in: canon},
		{name: "bare", in: bare},
		{name: "colons", in: colons},
		{name: "prefixed colons", in: "sha256:" + colons},
		{name: "upper case", in: strings.ToUpper(canon)},
		{name: "upper bare colons", in: strings.ToUpper(colons)},
		{name: "surrounding space", in: "  " + canon + "\n"},
		{name: "empty", in: "", wantErr: true},
		{name: "prefix only", in: "sha256:", wantErr: true},
		{name: "short", in: canon[:len(canon)-2], wantErr: true},
		{name: "odd length", in: canon[:len(canon)-1], wantErr: true},
		{name: "long", in: canon + "00", wantErr: true},
		{name: "not hex", in: "sha256:" + strings.Repeat("zz", 32), wantErr: true},
		{name: "other algorithm", in: "md5:" + bare, wantErr: true},
		{name: "sha1 length", in: "sha256:" + strings.Repeat("ab", 20), wantErr: true},
		{name: "inner space", in: "sha256:" + bare[:10] + " " + bare[10:], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFingerprint(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("ParseFingerprint(%q) = %q, nil; want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != canon {
				t.Errorf("ParseFingerprint(%q) = %q, %v; want %q, nil", tt.in, got, err, canon)
			}
		})
	}
}

func TestParseCertPEM(t *testing.T) {
	a, b := testIdentities(t)
	keyBlock := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("not really")})
	tests := []struct {
		name    string
		in      []byte
		wantFP  string
		wantErr bool
	}{
		{name: "valid", in: a.CertPEM, wantFP: a.Fingerprint},
		{name: "valid with trailing space", in: append(slices.Clone(a.CertPEM), "\n\n  \n"...), wantFP: a.Fingerprint},
		{name: "empty", in: nil, wantErr: true},
		{name: "garbage", in: []byte("hello, I am a certificate"), wantErr: true},
		{name: "two certificates", in: append(slices.Clone(a.CertPEM), b.CertPEM...), wantErr: true},
		{name: "trailing garbage", in: append(slices.Clone(a.CertPEM), "junk"...), wantErr: true},
		{name: "private key block", in: keyBlock, wantErr: true},
		{name: "certificate block of garbage", in: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert, fp, err := ParseCertPEM(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Errorf("ParseCertPEM = %v, %q, nil; want an error", cert != nil, fp)
				}
				return
			}
			if err != nil || fp != tt.wantFP || cert == nil {
				t.Errorf("ParseCertPEM = %q, %v; want %q, nil", fp, err, tt.wantFP)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.txt")
	for i, content := range []string{"first", "second, longer", ""} {
		if err := WriteFileAtomic(path, []byte(content), 0o640); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Errorf("after write %d: content = %q, %v; want %q", i, got, err, content)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o640 {
			t.Errorf("after write %d: mode = %v; want 0640", i, perm)
		}
		assertDirHolds(t, dir, "f.txt")
	}

	// A failed write leaves nothing behind either.
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "g.txt"), []byte("x"), 0o600); err == nil {
		t.Errorf("WriteFileAtomic into a missing directory = nil; want an error")
	}
	if err := WriteFileAtomic(filepath.Join(dir, "sub"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "sub"), []byte("x"), 0o600); err == nil {
		t.Errorf("WriteFileAtomic over a directory = nil; want an error")
	}
	assertDirHolds(t, dir, "f.txt", "sub")
}

// assertDirHolds fails unless dir holds exactly names.
func assertDirHolds(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s holds %q; want %q (a temporary file left behind?)", dir, got, names)
	}
}

func TestMatch(t *testing.T) {
	a, b := testIdentities(t)
	tests := []struct {
		name         string
		pinned, peer string
		wantErr      bool
	}{
		{name: "same", pinned: a.Fingerprint, peer: a.Fingerprint},
		{name: "different", pinned: a.Fingerprint, peer: b.Fingerprint, wantErr: true},
		{name: "nothing pinned", pinned: "", peer: a.Fingerprint, wantErr: true},
		{name: "nothing pinned, empty peer", pinned: "", peer: "", wantErr: true},
		{name: "prefix of the pin", pinned: a.Fingerprint, peer: a.Fingerprint[:20], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Match(tt.pinned, tt.peer)
			if tt.wantErr != (err != nil) {
				t.Fatalf("Match(%q, %q) = %v; want error: %v", tt.pinned, tt.peer, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrFingerprintMismatch) {
				t.Errorf("Match error = %v; want it to wrap ErrFingerprintMismatch", err)
			}
		})
	}
}

// TestPinnedHandshake runs real TLS handshakes between
// ClientConfig and a server that pins its client the way the minion does.
// (Over loopback TCP: net.Pipe is unbuffered and TLS 1.3's post-handshake
// messages would block on it.)
func TestPinnedHandshake(t *testing.T) {
	master, minion := testIdentities(t)
	tests := []struct {
		name       string
		client     *Identity // presented by the client
		clientPin  string    // the server the client trusts
		serverPin  string    // the client the server trusts
		wantClient bool      // client side handshake succeeds
		wantServer bool
	}{
		{name: "both pins right", client: master, clientPin: minion.Fingerprint, serverPin: master.Fingerprint, wantClient: true, wantServer: true},
		{name: "client pins another server", client: master, clientPin: master.Fingerprint, serverPin: master.Fingerprint},
		{name: "server pins another client", client: minion, clientPin: minion.Fingerprint, serverPin: master.Fingerprint, wantClient: true},
		{name: "no client certificate", client: nil, clientPin: minion.Fingerprint, serverPin: master.Fingerprint, wantClient: true},
		{name: "server pins nothing", client: master, clientPin: minion.Fingerprint, serverPin: "", wantClient: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := tcpPair(t)
			srv := tls.Server(sc, &tls.Config{
				MinVersion:       tls.VersionTLS13,
				Certificates:     []tls.Certificate{minion.Cert},
				ClientAuth:       tls.RequireAnyClientCert,
				VerifyConnection: VerifyPinned(func(peer string) error { return Match(tt.serverPin, peer) }),
			})
			cli := tls.Client(cc, ClientConfig(tt.client, tt.clientPin))
			srvErr := make(chan error, 1)
			go func() {
				err := srv.Handshake()
				if err != nil {
					sc.Close() // unblock the client's read
				}
				srvErr <- err
			}()
			cliErr := cli.Handshake()
			if cliErr != nil {
				cc.Close()
			}
			sErr := <-srvErr
			if tt.wantServer != (sErr == nil) {
				t.Errorf("server handshake = %v; want success: %v", sErr, tt.wantServer)
			}
			// In TLS 1.3 the client finishes before the server has checked its
			// certificate; a refused client learns it on its first read.
			if tt.wantClient != (cliErr == nil) {
				t.Errorf("client handshake = %v; want success: %v", cliErr, tt.wantClient)
			}
			if cliErr == nil && sErr != nil {
				// The refused client's first read must fail, not hang or succeed.
				cc.SetReadDeadline(time.Now().Add(time.Minute))
				if _, err := cli.Read(make([]byte, 1)); err == nil {
					t.Errorf("refused client's first read succeeded; want an error")
				} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
					t.Errorf("refused client's first read timed out; want the server's alert")
				}
			}
			if cliErr == nil && sErr == nil {
				got := cli.ConnectionState().PeerCertificates[0]
				if Fingerprint(got.Raw) != minion.Fingerprint {
					t.Errorf("client saw server %s; want %s", Fingerprint(got.Raw), minion.Fingerprint)
				}
			}
		})
	}
}

func TestVerifyPinnedNoCertificate(t *testing.T) {
	called := false
	err := VerifyPinned(func(string) error { called = true; return nil })(tls.ConnectionState{})
	if err == nil || called {
		t.Errorf("VerifyPinned(no certificate) = %v, pin asked: %v; want an error without asking", err, called)
	}
	// An expired certificate is refused even when its pin matches.
	a, _ := testIdentities(t)
	leaf, err := x509.ParseCertificate(a.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	expired := *leaf
	expired.NotAfter = expired.NotBefore
	err = VerifyPinned(func(string) error { return nil })(tls.ConnectionState{PeerCertificates: []*x509.Certificate{&expired}})
	if err == nil {
		t.Errorf("VerifyPinned(expired certificate) = nil; want an error")
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed at cleanup.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close() })
	return client, server
}
