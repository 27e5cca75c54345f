package dmsnap.metrics;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** {@code --metrics} values: a bare port is loopback; other hosts only when written out. */
class MetricsAddressTest {

    @Test
    void aBarePortMeansLoopback() {
        assertEquals(new MetricsAddress("127.0.0.1", 9100), MetricsAddress.parse("9100"));
        assertEquals("127.0.0.1:9100", MetricsAddress.parse(" 9100 ").toString());
    }

    @Test
    void hostsAreTakenAsWritten() {
        assertEquals(new MetricsAddress("0.0.0.0", 9100), MetricsAddress.parse("0.0.0.0:9100"));
        assertEquals(new MetricsAddress("localhost", 0), MetricsAddress.parse("localhost:0"));
        assertEquals(new MetricsAddress("::1", 9100), MetricsAddress.parse("[::1]:9100"));
        assertEquals("[::1]:9100", MetricsAddress.parse("[::1]:9100").toString());
    }

    @Test
    void malformedValuesSayWhatIsWrong() {
        assertEquals("':9100' names no host (for every interface write 0.0.0.0:9100)",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse(":9100")).getMessage());
        assertEquals("'web' is not HOST:PORT or PORT",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse("web")).getMessage());
        assertEquals("'host:' is not HOST:PORT or PORT",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse("host:")).getMessage());
        assertEquals("'::1:9100': write an IPv6 address in brackets, as [::1]:9100",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse("::1:9100")).getMessage());
        assertEquals("'[::1]9100' is not [IPV6]:PORT",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse("[::1]9100")).getMessage());
        assertEquals("'70000': port 70000 is not between 0 and 65535",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse("70000")).getMessage());
        assertEquals("'-1': port -1 is not between 0 and 65535",
                assertThrows(IllegalArgumentException.class, () -> MetricsAddress.parse("-1")).getMessage());
    }
}
