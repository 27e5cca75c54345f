package dmsnap.cli;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import picocli.CommandLine;

/** {@code [HOST:]PORT} as a listen address: only a port means loopback; IPv6 hosts in brackets. */
final class ListenAddress {
    private ListenAddress() {
    }

    static InetSocketAddress parse(String text) {
        String host;
        String port;
        int colon = text.lastIndexOf(':');
        if (colon < 0) {
            host = "";
            port = text;
        } else {
            host = text.substring(0, colon);
            port = text.substring(colon + 1);
            if (host.startsWith("[") && host.endsWith("]")) {
                host = host.substring(1, host.length() - 1);
            }
        }
        int number;
        try {
            number = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("'" + text + "' is not [HOST:]PORT");
        }
        if (number < 0 || number > 65535) {
            throw new IllegalArgumentException("port " + number + " is not 0..65535");
        }
        try {
            InetAddress address = host.isEmpty() ? InetAddress.getLoopbackAddress() : InetAddress.getByName(host);
            return new InetSocketAddress(address, number);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("unknown host '" + host + "'");
        }
    }

    /** picocli: a bad value is a usage error naming the option. */
    static final class Converter implements CommandLine.ITypeConverter<InetSocketAddress> {
        @Override
        public InetSocketAddress convert(String value) {
            try {
                return parse(value);
            } catch (IllegalArgumentException e) {
                throw new CommandLine.TypeConversionException(e.getMessage());
            }
        }
    }
}
