package ssh

import "testing"

// SetTestHookPut makes Put call fn at each stage of a file put (see
// testHookPut) until the test ends. The hook is global: the test must not
// run in parallel (parallel tests wait until it has ended).
func SetTestHookPut(t testing.TB, fn func(stage, path string)) {
	t.Helper()
	testHookPut = fn
	t.Cleanup(func() { testHookPut = nil })
}
