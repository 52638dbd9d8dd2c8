//go:build tools

// Package victorialogs pins the log-store and collector programs WikiStreams builds
// from the Go module proxy, so that `go mod tidy` keeps their dependencies in
// go.sum and `go build <import path>` works offline from the module cache.
package victorialogs

import (
	_ "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
)
