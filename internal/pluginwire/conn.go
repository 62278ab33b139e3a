package pluginwire

import (
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the plugin protocol version this module speaks.
const ProtocolVersion = 1

// Handshake is the go-plugin handshake shared by the engine and plugins. The
// cookie only tells a user who runs a plugin by hand that it is not a
// program to run directly; never change it.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "RUNBOOK_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "7d1c9c8e4a2b4f0e9a35b1f3d0c6e2a8",
}

// PluginKey is the name of the one service in every plugin set: the name
// to Dispense from a go-plugin ClientProtocol.
const PluginKey = "plugin"

// Flow-control windows of the engine ↔ plugin connection. Fixed windows
// turn off gRPC's bandwidth estimator, whose PING round trips otherwise
// ride along with every small Apply; 4 MiB is well above what one loopback
// connection needs in flight.
const (
	streamWindow = 4 << 20
	connWindow   = 16 << 20
)

// ServerOptions are the plugin's gRPC server options.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.InitialWindowSize(streamWindow),
		grpc.InitialConnWindowSize(connWindow),
	}
}

// DialOptions are the engine side's counterpart of ServerOptions.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(streamWindow),
		grpc.WithInitialConnWindowSize(connWindow),
	}
}
