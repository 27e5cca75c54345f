package dmsnap.net;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** {@code --metrics} and {@code --nbd-listen} values: a bare port is loopback; other hosts only when written out. */
class ListenAddressTest {

    @Test
    void aBarePortMeansLoopback() {
        assertEquals(new ListenAddress("127.0.0.1", 9100), ListenAddress.parse("9100"));
        assertEquals("127.0.0.1:9100", ListenAddress.parse(" 9100 ").toString());
    }

    @Test
    void hostsAreTakenAsWritten() {
        assertEquals(new ListenAddress("0.0.0.0", 9100), ListenAddress.parse("0.0.0.0:9100"));
        assertEquals(new ListenAddress("localhost", 0), ListenAddress.parse("localhost:0"));
        assertEquals(new ListenAddress("::1", 9100), ListenAddress.parse("[::1]:9100"));
        assertEquals("[::1]:9100", ListenAddress.parse("[::1]:9100").toString());
    }

    @Test
    void malformedValuesSayWhatIsWrong() {
        assertEquals(
                "':9100' names no host (for every interface write 0.0.0.0:9100)",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse(":9100"))
                        .getMessage());
        assertEquals(
                "'web' is not HOST:PORT or PORT",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse("web"))
                        .getMessage());
        assertEquals(
                "'host:' is not HOST:PORT or PORT",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse("host:"))
                        .getMessage());
        assertEquals(
                "'::1:9100': write an IPv6 address in brackets, as [::1]:9100",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse("::1:9100"))
                        .getMessage());
        assertEquals(
                "'[::1]9100' is not [IPV6]:PORT",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse("[::1]9100"))
                        .getMessage());
        assertEquals(
                "'70000': port 70000 is not between 0 and 65535",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse("70000"))
                        .getMessage());
        assertEquals(
                "'-1': port -1 is not between 0 and 65535",
                assertThrows(IllegalArgumentException.class, () -> ListenAddress.parse("-1"))
                        .getMessage());
    }
}
