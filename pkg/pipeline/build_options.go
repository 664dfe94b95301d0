package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hoistci/hoist/pkg/config"
	"github.com/hoistci/hoist/pkg/engine"
	"github.com/hoistci/hoist/pkg/images"
)

// buildSecrets resolves hoist.yaml's secrets and SSH agents from the
// settings: a secret's variable is looked up in the run's environment, and
// an ssh entry with no socket or keys is the agent at SSH_AUTH_SOCK. In
// fork/PR mode a secret not marked pr: true is withheld.
func (r *Run) buildSecrets() (map[string]images.Secret, map[string]images.SSH) {
	cfg := r.Cfg
	secrets := map[string]images.Secret{}
	for id, c := range cfg.Secrets {
		sec := images.Secret{Where: fmt.Sprintf("%s:%d", cfg.File, c.Line)}
		switch {
		case c.File != "":
			sec.File, sec.From = cfg.Path(c.File), "file "+c.File
		default:
			sec.From = "environment variable " + c.Env
			v, ok := r.Set.Lookup(c.Env)
			if !ok {
				sec.Withheld = fmt.Sprintf("%s is not set: export it (or make the mount optional: required=false)", c.Env)
			}
			sec.Value = []byte(v)
		}
		if r.Set.PR && !c.PR {
			sec.Value, sec.File = nil, ""
			sec.Withheld = fmt.Sprintf("fork/PR mode gives builds no secrets: set pr: true on secrets.%s in hoist.yaml only if anyone who opens a pull request may see it, or make the mount optional (required=false)", id)
		}
		secrets[id] = sec
	}
	agents := map[string]images.SSH{}
	for id, c := range cfg.SSH {
		a := images.SSH{Where: fmt.Sprintf("%s:%d", cfg.File, c.Line), Socket: c.Socket, From: "ssh." + id + ".socket"}
		for _, k := range c.Keys {
			a.Keys = append(a.Keys, cfg.Path(k))
		}
		if a.Socket == "" && len(a.Keys) == 0 {
			a.Socket, a.From = r.Set.SSHAuthSock, "SSH_AUTH_SOCK"
		}
		agents[id] = a
	}
	return secrets, agents
}

// registryAuth gives builds Docker's credentials (DOCKER_CONFIG, else
// ~/.docker) plus Hoist's registry settings for the configured registry,
// so FROM a private image works as it does for docker build.
func (r *Run) registryAuth(b *engine.Builder) error {
	dir := r.Set.DockerConfig
	if dir == "" {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".docker")
		}
	}
	extra := map[string]engine.Credentials{}
	if host := strings.TrimSpace(r.Cfg.Registry.Host); host != "" && (r.Set.RegistryUser != "" || r.Set.RegistryPassword != "") {
		extra[host] = engine.Credentials{Username: r.Set.RegistryUser, Password: string(r.Set.RegistryPassword)}
	}
	return b.UseRegistryAuth(dir, extra)
}

// remoteBuilder is hoist.yaml's builder with the environment's overrides
// (BUILDKIT_HOST, HOIST_BUILDKIT_CA/CERT/KEY), checked by the same rule as
// the config: the zero Remote means the engine's own BuildKit.
func (r *Run) remoteBuilder() (engine.Remote, error) {
	b := r.Cfg.Builder
	where := fmt.Sprintf("%s:%d: builder", r.Cfg.File, b.Line)
	for _, o := range []struct {
		v   string
		dst *string
	}{{r.Set.BuildkitHost, &b.Host}, {r.Set.BuildkitCA, &b.CA}, {r.Set.BuildkitCert, &b.Cert}, {r.Set.BuildkitKey, &b.Key}} {
		if o.v != "" {
			*o.dst = o.v
			where = "builder (hoist.yaml with BUILDKIT_HOST and HOIST_BUILDKIT_CA, _CERT, _KEY)"
		}
	}
	if b.Host == "" {
		return engine.Remote{}, nil
	}
	if err := b.Check(); err != nil {
		return engine.Remote{}, fmt.Errorf("%s: %w", where, err)
	}
	rm := engine.Remote{Addr: b.Host, ServerName: b.ServerName}
	if b.CA != "" {
		// Paths from hoist.yaml are the repository's; from the
		// environment, as given.
		rm.CA, rm.Cert, rm.Key = r.Cfg.Path(b.CA), r.Cfg.Path(b.Cert), r.Cfg.Path(b.Key)
	}
	return rm, nil
}

// buildCache is where builds keep their cache when hoist.yaml asks for it
// (registry.cache) and a registry is configured: read always, written
// except in fork/PR mode, which writes no shared cache.
func (r *Run) buildCache() *images.Cache {
	reg := r.Cfg.Registry
	if !reg.Cache || reg.Host == "" {
		return nil
	}
	return &images.Cache{Prefix: r.prefixOn(reg.Host), Write: !r.Set.PR,
		// Plain HTTP only where Push uses it too: a loopback registry.
		Insecure: reg.Insecure || config.Loopback(reg.Host)}
}
