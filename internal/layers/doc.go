// Package layers holds felix's dependency guard: layers_test.go lists every
// package in its layer, bottom first, and fails when a package imports one
// from a higher layer, or a new package has no layer yet. The table there is
// the one place the allowed direction is written down.
package layers
