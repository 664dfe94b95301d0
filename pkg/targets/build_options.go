package targets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/images"
)

// Environment the build reads besides hoist.yaml: where Docker keeps its
// credentials, and the agent SSH forwarding defaults to. Secrets name their
// own variables in hoist.yaml.
const (
	envDockerConfig = "DOCKER_CONFIG" // Docker's config folder (default ~/.docker)
	envSSHAuthSock  = "SSH_AUTH_SOCK" // the SSH agent an ssh entry without socket or keys forwards
)

// buildSecrets resolves hoist.yaml's secrets and SSH agents from the
// environment. In fork/PR mode a secret not marked pr: true is withheld.
func (s *session) buildSecrets() (map[string]images.Secret, map[string]images.SSH) {
	secrets := map[string]images.Secret{}
	for id, c := range s.cfg.Secrets {
		sec := images.Secret{Where: fmt.Sprintf("%s:%d", s.cfg.File, c.Line)}
		switch {
		case c.File != "":
			sec.File, sec.From = s.cfg.Path(c.File), "file "+c.File
		default:
			sec.From = "environment variable " + c.Env
			v, ok := os.LookupEnv(c.Env)
			if !ok {
				sec.Withheld = fmt.Sprintf("%s is not set: export it (or make the mount optional: required=false)", c.Env)
			}
			sec.Value = []byte(v)
		}
		if s.pr && !c.PR {
			sec.Value, sec.File = nil, ""
			sec.Withheld = fmt.Sprintf("fork/PR mode gives builds no secrets: set pr: true on secrets.%s in hoist.yaml only if anyone who opens a pull request may see it, or make the mount optional (required=false)", id)
		}
		secrets[id] = sec
	}
	agents := map[string]images.SSH{}
	for id, c := range s.cfg.SSH {
		a := images.SSH{Where: fmt.Sprintf("%s:%d", s.cfg.File, c.Line), Socket: c.Socket, From: "ssh." + id + ".socket"}
		for _, k := range c.Keys {
			a.Keys = append(a.Keys, s.cfg.Path(k))
		}
		if a.Socket == "" && len(a.Keys) == 0 {
			a.Socket, a.From = os.Getenv(envSSHAuthSock), envSSHAuthSock
		}
		agents[id] = a
	}
	return secrets, agents
}

// registryAuth gives builds Docker's credentials (DOCKER_CONFIG, else
// ~/.docker) plus Hoist's registry settings, so FROM a private image works
// as it does for docker build.
func (s *session) registryAuth(b *engine.Builder) error {
	dir := os.Getenv(envDockerConfig)
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	extra := map[string]engine.Credentials{}
	if host := strings.TrimSpace(s.cfg.Registry.Host); host != "" {
		if u, p := os.Getenv(envRegistryUser), os.Getenv(envRegistryPass); u != "" || p != "" {
			extra[host] = engine.Credentials{Username: u, Password: p}
		}
	}
	return b.UseRegistryAuth(dir, extra)
}
