package notify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// ErrRefused is wrapped by the errors of CheckURL and of callback dials
// when a callback would reach an address the master must not call.
var ErrRefused = errors.New("callback address refused")

// allowList is Config.Allow parsed: addresses by prefix, hosts by name.
type allowList struct {
	prefixes []netip.Prefix
	hosts    map[string]bool // lower-case "host" or "host:port" as net.JoinHostPort writes it
}

func parseAllow(entries []string) (allowList, error) {
	al := allowList{hosts: map[string]bool{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if p, err := netip.ParsePrefix(e); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			al.prefixes = append(al.prefixes, p.Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap().WithZone("")
			al.prefixes = append(al.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		if strings.ContainsAny(e, "/@?# \t") {
			return al, fmt.Errorf("callback allow-list entry %q: want a CIDR, an IP, a host or host:port", e)
		}
		if h, p, err := net.SplitHostPort(e); err == nil {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || h == "" {
				return al, fmt.Errorf("callback allow-list entry %q: bad host:port", e)
			}
			al.hosts[hostKey(h, p)] = true
			continue
		}
		if strings.Contains(e, ":") {
			return al, fmt.Errorf("callback allow-list entry %q: want a CIDR, an IP, a host or host:port", e)
		}
		al.hosts[hostKey(e, "")] = true
	}
	return al, nil
}

// hostKey is how a host and an optional port are looked up in the allow-list.
func hostKey(host, port string) string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if port == "" {
		return host
	}
	return net.JoinHostPort(host, port)
}

// hostAllowed reports whether host, or host:port, is allow-listed by name.
func (al allowList) hostAllowed(host, port string) bool {
	return al.hosts[hostKey(host, "")] || (port != "" && al.hosts[hostKey(host, port)])
}

func (al allowList) ipAllowed(a netip.Addr) bool {
	for _, p := range al.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// checkAddr returns an error wrapping ErrRefused if a is loopback,
// link-local, unspecified or the master's own and not allow-listed.
func (n *Notifier) checkAddr(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	if n.now().allow.ipAllowed(a) {
		return nil
	}
	var why string
	switch {
	case a.IsLoopback():
		why = "loopback"
	case a.IsUnspecified() || (a.Is4() && a.As4()[0] == 0):
		why = "unspecified"
	case a.IsLinkLocalUnicast():
		why = "link-local"
	case a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast():
		why = "link-local multicast"
	case n.isOwn(a):
		why = "one of the master's own addresses"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s is %s (allow-list it in the master's callbacks.allow to permit it)", ErrRefused, a, why)
}

func (n *Notifier) isOwn(a netip.Addr) bool {
	if n.cfg.OwnAddrs == nil {
		return false
	}
	for _, ip := range n.cfg.OwnAddrs() {
		if o, ok := netip.AddrFromSlice(ip); ok && o.Unmap() == a {
			return true
		}
	}
	return false
}

// CheckURL refuses a callback URL the master must not call: not http or
// https, with credentials, or whose host is or resolves to any loopback,
// link-local, unspecified or own address of the master — unless the host
// (or host:port) is allow-listed by name or every refused address by CIDR.
// A host that does not resolve is refused too. The API calls it when a job
// is created; delivery checks the address again when it dials, so a name
// that resolves elsewhere later (DNS rebinding) gains nothing.
func (n *Notifier) CheckURL(ctx context.Context, rawURL string) error {
	st := n.now()
	if st.secret == "" {
		return errors.New("callbacks are disabled: the master has no callbacks.secret to sign them with")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: want an http or https URL", rawURL)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in a callback URL are not allowed", u.Redacted())
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q has no host", rawURL)
	}
	if st.allow.hostAllowed(host, portOf(u)) {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return n.checkAddr(a)
	}
	addrs, err := n.lookup(ctx, host)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("resolve %s: no addresses", host)
	}
	for _, ia := range addrs {
		a, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			return fmt.Errorf("resolve %s: bad address %v", host, ia.IP)
		}
		if err := n.checkAddr(a); err != nil {
			return fmt.Errorf("host %s: %w", host, err)
		}
	}
	return nil
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// control is the callback dialer's last word: it runs with the address
// actually being connected to, after name resolution, and refuses it as
// CheckURL would. Hosts allow-listed by name never reach it (see dial).
func (n *Notifier) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse dialled address %q: %v", ErrRefused, address, err)
	}
	return n.checkAddr(ap.Addr())
}

// dial connects a callback: a host allow-listed by name is dialled as is;
// any other goes through the guarded dialer, whose Control re-checks every
// resolved address it connects to.
func (n *Notifier) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && n.now().allow.hostAllowed(host, port) {
		return n.plainDialer.DialContext(ctx, network, addr)
	}
	return n.guardDialer.DialContext(ctx, network, addr)
}

// InterfaceIPs returns the addresses of this machine's network interfaces;
// with the master's listen address it makes a Config.OwnAddrs.
func InterfaceIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []net.IP
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			out = append(out, ipn.IP)
		}
	}
	return out
}
