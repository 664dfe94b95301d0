package engine

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/versions"
)

// Store is how an engine keeps images. The two differ in what an image ID
// is, so Hoist records the config digest (the same on both) as an image's
// identity and the engine's ID only as a handle for that engine.
type Store string

const (
	// StoreClassic is the graph-driver store (overlay2 and kin) of Docker
	// Engine up to 28 and of upgraded installs: an image ID is the digest
	// of its config, and `docker save` writes uncompressed layers.
	StoreClassic Store = "classic"
	// StoreContainerd is containerd's image store, the default of Docker
	// Engine 29 on new installs and of Docker Desktop: an image ID is the
	// digest of its manifest or index, and `docker save` writes the
	// blobs as stored, layers usually gzip-compressed.
	StoreContainerd Store = "containerd"
)

// MinAPI is the oldest Engine API Hoist speaks: BuildKit through the
// engine's /grpc endpoint and `docker save` of several images at once as
// Hoist reads them need Docker Engine 20.10.
const MinAPI = "1.41"

// snapshotterDriver is the driver-type a containerd-store engine reports.
const snapshotterDriver = "io.containerd.snapshotter.v1"

// classicDrivers are the graph drivers of the classic store.
var classicDrivers = map[string]bool{
	"overlay2": true, "overlay": true, "fuse-overlayfs": true, "vfs": true,
	"btrfs": true, "zfs": true, "devicemapper": true, "aufs": true, "windowsfilter": true,
}

// storeOf names the store from what `docker info` reports: Driver, and
// DriverStatus pairs, where a containerd store says driver-type.
func storeOf(driver string, status [][2]string) (Store, error) {
	for _, kv := range status {
		if kv[0] == "driver-type" {
			if kv[1] == snapshotterDriver {
				return StoreContainerd, nil
			}
			return "", fmt.Errorf("keeps images with %s (driver %q), a store Hoist does not know", kv[1], driver)
		}
	}
	if classicDrivers[driver] {
		return StoreClassic, nil
	}
	return "", fmt.Errorf("keeps images with storage driver %q, which Hoist does not know", driver)
}

// checkAPI refuses an engine older than MinAPI.
func checkAPI(api string) error {
	if api == "" || versions.LessThan(api, MinAPI) {
		if api == "" {
			api = "an unknown version"
		}
		return fmt.Errorf("speaks Engine API %s; Hoist needs %s or later (Docker Engine 20.10+)", api, MinAPI)
	}
	return nil
}

// describe reads the engine's API version, server version and store, and
// refuses an engine Hoist cannot work with, in one line saying what to do.
func (e *Engine) describe(ctx context.Context, pingAPI string) error {
	where := "the Docker Engine at " + e.API.DaemonHost()
	if err := checkAPI(pingAPI); err != nil {
		return fmt.Errorf("%s %v: upgrade it, or point DOCKER_HOST at a newer engine", where, err)
	}
	info, err := e.API.Info(ctx)
	if err != nil {
		return fmt.Errorf("asking %s how it stores images: %w", where, err)
	}
	e.Version = info.ServerVersion
	s, err := storeOf(info.Driver, info.DriverStatus)
	if err != nil {
		return fmt.Errorf("%s (%s) %v: run it with overlay2, or with the containerd image store (dockerd --feature containerd-snapshotter=true, Docker Desktop's default)", where, orUnknown(e.Version), err)
	}
	e.Store = s
	return nil
}

func orUnknown(v string) string {
	if v == "" {
		return "version unknown"
	}
	return "version " + v
}
