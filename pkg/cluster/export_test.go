package cluster

import "testing"

// OnStream runs fn once the first chunk of each load's stream has reached
// the nodes, holding the stream until fn returns, until t ends. Tests that
// use it must not run in parallel with other loads.
func OnStream(t testing.TB, fn func()) {
	streamHook = fn
	t.Cleanup(func() { streamHook = nil })
}
