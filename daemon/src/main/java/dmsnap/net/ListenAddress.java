package dmsnap.net;

/**
 * Where a daemon listener ({@code --metrics}, {@code --nbd-listen}) listens: {@code HOST:PORT}, {@code [IPV6]:PORT}, or a
 * bare {@code PORT} meaning {@value #LOOPBACK}. Any other host, a non-loopback one included, is
 * used as the user wrote it; an empty host ({@code :9100}) is refused so that listening on every
 * interface is always spelt out ({@code 0.0.0.0:9100}).
 *
 * @param host a host name or IP literal (without brackets)
 * @param port 0 to 65535 (0: any free port, reported in the log)
 */
public record ListenAddress(String host, int port) {
    public static final String LOOPBACK = "127.0.0.1";

    public ListenAddress {
        if (host == null || host.isEmpty()) {
            throw new IllegalArgumentException("no host");
        }
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port " + port + " is not between 0 and 65535");
        }
    }

    /**
     * Parses the option's value.
     *
     * @throws IllegalArgumentException with a sentence saying what is wrong
     */
    public static ListenAddress parse(String text) {
        String s = text.strip();
        String host;
        String port;
        if (s.startsWith("[")) {
            int close = s.indexOf(']');
            if (close < 0 || close + 1 >= s.length() || s.charAt(close + 1) != ':') {
                throw new IllegalArgumentException("'" + text + "' is not [IPV6]:PORT");
            }
            host = s.substring(1, close);
            port = s.substring(close + 2);
        } else if (s.indexOf(':') < 0) {
            host = LOOPBACK;
            port = s;
        } else if (s.indexOf(':') != s.lastIndexOf(':')) {
            throw new IllegalArgumentException("'" + text + "': write an IPv6 address in brackets, as [::1]:9100");
        } else {
            host = s.substring(0, s.indexOf(':'));
            port = s.substring(s.indexOf(':') + 1);
        }
        if (host.isEmpty()) {
            throw new IllegalArgumentException(
                    "'" + text + "' names no host (for every interface write 0.0.0.0" + s + ")");
        }
        int number;
        try {
            number = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is not HOST:PORT or PORT");
        }
        if (number < 0 || number > 65535) {
            throw new IllegalArgumentException("'" + text + "': port " + number + " is not between 0 and 65535");
        }
        return new ListenAddress(host, number);
    }

    /** {@code HOST:PORT}, with brackets around an IPv6 literal. */
    @Override
    public String toString() {
        return (host.indexOf(':') >= 0 ? "[" + host + "]" : host) + ":" + port;
    }
}
