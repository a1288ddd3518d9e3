// Package exec is felix's job engine: it resolves nothing itself, but fans one
// command out to many hosts through a Transport with bounded parallelism,
// per-host deadlines and output caps, and gives every host exactly one final
// model.State. Transfer runs a push or fetch on one host over a
// FileTransport, the same algorithm for every transport. The words it works
// in — targets, commands, exits, results — are package model's. Its
// subpackage exec/local runs a single command on this machine and is what a
// minion uses.
//
// The package deliberately imports neither the inventory (SQLite) nor any API
// code, so the minion binary can link it and stay small and cgo-free.
package exec
