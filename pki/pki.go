// Package pki makes and keeps the self-signed certificates that identify a
// master and its minions, and builds TLS configurations that trust exactly one
// pinned certificate fingerprint instead of a CA chain.
//
// A fingerprint is the SHA-256 of the DER certificate, written "sha256:<hex>".
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrFingerprintMismatch reports a peer certificate other than the pinned one.
var ErrFingerprintMismatch = errors.New("certificate fingerprint does not match the pinned one")

// Fingerprint returns "sha256:<hex>" of a DER-encoded certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ParseFingerprint normalises a fingerprint given by an operator: it accepts
// "sha256:<hex>" or bare hex, with or without colons between bytes, in any case.
func ParseFingerprint(s string) (string, error) {
	h := strings.ToLower(strings.TrimSpace(s))
	h = strings.TrimPrefix(h, "sha256:")
	h = strings.ReplaceAll(h, ":", "")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("fingerprint %q: want sha256:<64 hex digits>", s)
	}
	return "sha256:" + h, nil
}

// Identity is a key pair with its self-signed certificate.
type Identity struct {
	Cert        tls.Certificate
	CertPEM     []byte
	Fingerprint string
}

// LoadOrCreate loads the identity kept as name.crt and name.key in dir, or
// creates a new self-signed one valid for hosts (DNS names or IPs) when none
// exists. Both files are written 0600 and atomically.
func LoadOrCreate(dir, name, commonName string, hosts []string) (*Identity, error) {
	certPath := filepath.Join(dir, name+".crt")
	keyPath := filepath.Join(dir, name+".key")
	certPEM, err := os.ReadFile(certPath)
	if err == nil {
		keyPEM, err := os.ReadFile(keyPath)
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", keyPath, err)
		}
		return parseIdentity(certPEM, keyPEM)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read certificate %s: %w", certPath, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	certPEM, keyPEM, err := generate(commonName, hosts)
	if err != nil {
		return nil, err
	}
	// Key first: a certificate without its key would be unusable.
	if err := WriteFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := WriteFileAtomic(certPath, certPEM, 0o600); err != nil {
		return nil, err
	}
	return parseIdentity(certPEM, keyPEM)
}

func parseIdentity(certPEM, keyPEM []byte) (*Identity, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load key pair: %w", err)
	}
	return &Identity{Cert: cert, CertPEM: certPEM, Fingerprint: Fingerprint(cert.Certificate[0])}, nil
}

func generate(commonName string, hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"felix"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // self-signed: lets curl --cacert trust it directly
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// ParseCertPEM parses one PEM certificate and returns it with its fingerprint.
func ParseCertPEM(certPEM []byte) (*x509.Certificate, string, error) {
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, "", errors.New("no PEM certificate found")
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, "", errors.New("more than one PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("parse certificate: %w", err)
	}
	return cert, Fingerprint(block.Bytes), nil
}

// WriteFileAtomic writes data to a temporary file beside path and renames it
// into place, so readers never see a half-written file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// VerifyPinned returns a tls.Config.VerifyConnection hook that checks the
// peer's leaf certificate is valid now and hands its fingerprint to pinned,
// whose error refuses the connection. pinned runs on every handshake, so
// what it trusts may change (trust on first use).
func VerifyPinned(pinned func(peer string) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer presented no certificate")
		}
		leaf := cs.PeerCertificates[0]
		now := time.Now()
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return fmt.Errorf("peer certificate %s is not valid now", Fingerprint(leaf.Raw))
		}
		return pinned(Fingerprint(leaf.Raw))
	}
}

// Match compares a peer fingerprint with the pinned one in constant time.
func Match(pinned, peer string) error {
	if pinned == "" || subtle.ConstantTimeCompare([]byte(pinned), []byte(peer)) != 1 {
		return fmt.Errorf("%w: got %s", ErrFingerprintMismatch, peer)
	}
	return nil
}

// ClientConfig returns a TLS 1.3 client configuration that presents id (may
// be nil) and trusts exactly the server certificate whose fingerprint is
// pinned. No CA chain or host name is checked: the pin is the trust.
func ClientConfig(id *Identity, pinned string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by the pin check in VerifyConnection
		VerifyConnection:   VerifyPinned(func(peer string) error { return Match(pinned, peer) }),
	}
	if id != nil {
		cfg.Certificates = []tls.Certificate{id.Cert}
	}
	return cfg
}
