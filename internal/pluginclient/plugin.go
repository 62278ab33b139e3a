package pluginclient

import (
	"context"
	"errors"

	"github.com/hashicorp/go-plugin"
	"github.com/runbookdev/runbook/internal/pluginwire"
	pb "github.com/runbookdev/runbook/sdk/proto/pluginv1"
	"google.golang.org/grpc"
)

// PluginSets is what the host passes to go-plugin's ClientConfig
// VersionedPlugins; dispensing pluginwire.PluginKey gives an sdk.Provider.
func PluginSets() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{pluginwire.ProtocolVersion: {pluginwire.PluginKey: grpcPlugin{}}}
}

// grpcPlugin is the client half of the go-plugin plugin (the server half is
// in sdk/serve.go).
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
}

var _ plugin.GRPCPlugin = grpcPlugin{}

func (grpcPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("pluginclient: the host does not serve plugins")
}

func (grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return New(pb.NewPluginClient(conn)), nil
}
