//go:build mage

// This repository's own pipeline is Hoist's targets, imported as-is.
package main

import (
	//mage:import
	_ "github.com/hoistci/hoist/pkg/targets"
)
