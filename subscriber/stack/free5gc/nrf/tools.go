//go:build tools

package tools

import _ "github.com/free5gc/nrf/cmd"
