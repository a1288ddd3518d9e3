package master

import (
	"errors"
	"fmt"
	"testing"

	"github.com/felix-ops/felix/api"
	"github.com/felix-ops/felix/transport/ssh"
)

// TestHostKeyError: the SSH pool's host-key failures reach the API as
// api.ErrHostKey (a 400), keeping their message and ssh.ErrHostKey.
func TestHostKeyError(t *testing.T) {
	inner := fmt.Errorf("host 10.0.0.7:22 presents SHA256:aaa, not SHA256:bbb: %w", ssh.ErrHostKey)
	err := error(hostKeyError{inner})
	if !errors.Is(err, api.ErrHostKey) || !errors.Is(err, ssh.ErrHostKey) || err.Error() != inner.Error() {
		t.Errorf("hostKeyError = %v (api %v, ssh %v); want both sentinels and the pool's message", err,
			errors.Is(err, api.ErrHostKey), errors.Is(err, ssh.ErrHostKey))
	}
}
