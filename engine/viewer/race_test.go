//go:build race

package viewer_test

// raceEnabled: timings are not checked under the race detector (it slows
// everything down several times).
const raceEnabled = true
