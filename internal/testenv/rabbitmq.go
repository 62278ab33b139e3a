package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// RabbitMQ is a private RabbitMQ node on 127.0.0.1 with its own data,
// log and config directories (no system service, no /var/lib/rabbitmq).
type RabbitMQ struct {
	// URL is amqp://guest:guest@127.0.0.1:PORT/ (guest may log in over
	// loopback).
	URL  string
	Port int
	Node string
	Dir  string

	cmd    *exec.Cmd
	exited chan error
	env    []string
}

// StartRabbitMQ starts rabbitmq-server in the foreground on free loopback
// ports and kills it when the test ends. It takes about 10 s.
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	const bin = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	if _, err := os.Stat(bin); err != nil {
		Unavailable(t, "rabbitmq-server not installed (%v)", err)
	}
	dir := scratchDir(t, "runbook-rabbitmq-")
	r := &RabbitMQ{Dir: dir}
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		r.Port = FreePort(t)
		dist := FreePort(t)
		r.Node = fmt.Sprintf("rbtest%d@localhost", r.Port)
		r.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", r.Port)
		conf := filepath.Join(dir, "rabbitmq.conf")
		writeFile(t, conf, fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nlog.console = false\nlog.file.level = warning\n", r.Port), 0o644)
		writeFile(t, filepath.Join(dir, "enabled_plugins"), "[].\n", 0o644)
		r.env = append(os.Environ(),
			"HOME="+dir, // the Erlang cookie goes there
			"RABBITMQ_NODENAME="+r.Node,
			"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
			fmt.Sprintf("RABBITMQ_NODE_PORT=%d", r.Port),
			fmt.Sprintf("RABBITMQ_DIST_PORT=%d", dist),
			"ERL_EPMD_ADDRESS=127.0.0.1",
			"RABBITMQ_CONFIG_FILE="+conf,
			"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
			"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
			"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
			"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
			"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		)
		if lastErr = r.start(); lastErr == nil {
			t.Cleanup(r.kill)
			return r
		}
		r.kill()
	}
	log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	Unavailable(t, "rabbitmq did not start: %v\n%s", lastErr, tail(log, 4000))
	return nil
}

func (r *RabbitMQ) start() error {
	logf, err := os.OpenFile(filepath.Join(r.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("/usr/lib/rabbitmq/bin/rabbitmq-server")
	cmd.Env = r.env
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	r.cmd = cmd
	r.exited = make(chan error, 1)
	go func() { r.exited <- cmd.Wait(); logf.Close() }()
	// A broker boot takes ~5 s on an idle machine but passed a minute at
	// load 30 (2 cores shared with other suites); a slow start is not a
	// missing server.
	return waitAMQP(fmt.Sprintf("127.0.0.1:%d", r.Port), r.exited, 150*time.Second)
}

// kill stops the node at once (SIGKILL to its process group): its data
// dies with the test.
func (r *RabbitMQ) kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
	}
	r.cmd = nil
}

// Restart kills the node and starts it again on the same port with the same
// data: durable queues and persistent messages survive.
func (r *RabbitMQ) Restart(t testing.TB) {
	t.Helper()
	r.kill()
	if err := r.start(); err != nil {
		t.Fatalf("restart rabbitmq: %v", err)
	}
}

// waitAMQP waits until the port answers the AMQP protocol header with
// Connection.Start (a listening port alone is not enough: the node opens
// it before it can serve).
func waitAMQP(addr string, exited <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("rabbitmq-server exited: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = c.Write([]byte("AMQP\x00\x00\x09\x01"))
			buf := make([]byte, 8)
			n, _ := c.Read(buf)
			c.Close()
			if n >= 7 && buf[0] == 1 { // a method frame
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("rabbitmq not serving AMQP on %s after %s", addr, limit)
}
