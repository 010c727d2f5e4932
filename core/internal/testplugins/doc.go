// Package testplugins holds deliberately broken plugin programs that the
// core's tests launch to prove each failure gets a clear error.
package testplugins
