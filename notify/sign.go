package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of every delivery. A receiver checks a callback like this:
//
//  1. Read X-Felix-Timestamp (unix seconds) and refuse it when it is more
//     than a few minutes away from the receiver's clock (replays).
//  2. Compute hex(HMAC-SHA256(secret, timestamp + "." + raw body)) with the
//     master's callbacks.secret and compare it, in constant time, with the
//     value after "v1=" in X-Felix-Signature. The header may carry several
//     comma-separated values (e.g. "v1=ab…,v1=cd…"); any match is enough.
//  3. Deduplicate on X-Felix-Event-Id (also the body's event_id): delivery
//     is at least once, and a retry carries the same event id with a new
//     timestamp and signature.
//
// Verify does all but the deduplication.
const (
	HeaderEventID   = "X-Felix-Event-Id"
	HeaderTimestamp = "X-Felix-Timestamp"
	HeaderSignature = "X-Felix-Signature"
	userAgent       = "felix-master"
)

// ErrSignature is wrapped by Verify's errors.
var ErrSignature = errors.New("invalid callback signature")

// DefaultMaxSkew is Verify's window when it is given none.
const DefaultMaxSkew = 5 * time.Minute

// Sign returns the X-Felix-Signature value for body sent at ts (unix
// seconds): "v1=" and the hex HMAC-SHA256 under secret of ts, ".", body.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify checks a delivery's signature headers against body: the timestamp
// must be within maxSkew of now (DefaultMaxSkew when maxSkew <= 0) and one
// of the signatures must match. Its errors wrap ErrSignature.
func Verify(secret string, header http.Header, body []byte, maxSkew time.Duration) error {
	if maxSkew <= 0 {
		maxSkew = DefaultMaxSkew
	}
	raw := header.Get(HeaderTimestamp)
	ts, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %s %q is not unix seconds", ErrSignature, HeaderTimestamp, raw)
	}
	if skew := time.Since(time.Unix(ts, 0)); skew > maxSkew || skew < -maxSkew {
		return fmt.Errorf("%w: timestamp %d is %s from now, more than %s", ErrSignature, ts,
			skew.Round(time.Second), maxSkew)
	}
	want := []byte(Sign(secret, ts, body))
	for _, v := range strings.Split(header.Get(HeaderSignature), ",") {
		if hmac.Equal([]byte(strings.TrimSpace(v)), want) {
			return nil
		}
	}
	return fmt.Errorf("%w: no %s matches the body and timestamp", ErrSignature, HeaderSignature)
}
