// Package mosquittotest starts a real Mosquitto broker for a test or a
// benchmark, on a free loopback port, configured as meters/README.md "Edge
// ingest: the MQTT bridge" requires for the bridge's guarantee: no queue limit
// and no in-flight limit per client, so a persistent session keeps every QoS 1
// message (Config). Tests never skip: without the mosquitto binary they fail,
// naming the package to install.
//
// It owns the broker's process, configuration file and log in a directory
// of the caller's; the broker runs as the current user (its files stay
// private) and dies with the process that started it.
package mosquittotest
