// Package model is felix's shared vocabulary: the words every layer uses for
// a job and its hosts — host and job states, output streams, targets,
// commands and file transfers, results and file reports, job events, the
// stored job spec — and the validators the API, the CLI and the hosts agree
// on (ids, host specs, env names, paths, modes, batches, transport modes).
//
// It is the bottom layer: it imports only the standard library and no other
// felix package, so the minion, the CLI and the master can all link it. The
// edges convert: api/wire builds the HTTP bodies from these types, the agent
// transport converts them to and from protobuf, the CLI renders them.
package model
