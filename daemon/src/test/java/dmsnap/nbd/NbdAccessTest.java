package dmsnap.nbd;

import static dmsnap.nbd.NbdProtocol.*;
import static org.junit.jupiter.api.Assertions.*;

import dmsnap.device.MappedDevice;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Who may use the NBD Unix socket: its mode and group ({@code --nbd-group}), the SO_PEERCRED
 * rule of {@link PeerAccess}, and what a refused peer is told (NBD_REP_ERR_POLICY with the
 * reason on every option, so that its client can say why).
 */
@Timeout(120)
class NbdAccessTest {
    private static final String REASON = "permission denied: user mallory may not use this daemon's exports";

    @TempDir
    Path dir;

    private static GroupPrincipal group(String name) throws IOException {
        return FileSystems.getDefault().getUserPrincipalLookupService().lookupPrincipalByGroupName(name);
    }

    private static PosixFileAttributes attributes(Path p) throws IOException {
        return Files.readAttributes(p, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
    }

    @Test
    void theSocketIsTheDaemonUsersOnlyUnlessAGroupIsGiven() throws Exception {
        try (NbdFixture fx = new NbdFixture(dir.resolve("plain"), Duration.ofSeconds(30))) {
            PosixFileAttributes a = attributes(fx.server.socketPath());
            assertEquals("rw-------", PosixFilePermissions.toString(a.permissions()));
            assertEquals(System.getProperty("user.name"), a.owner().getName());
        }
        GroupPrincipal disk = group("disk");
        try (NbdFixture fx = new NbdFixture(dir.resolve("group"), Duration.ofSeconds(30));
                NbdServer shared = new NbdServer(
                        fx.dm,
                        dir.resolve("group/shared.sock"),
                        null,
                        null,
                        new NbdServer.Settings(Duration.ofSeconds(30), 16, 2, 16L << 20, new ManualClock()),
                        new NbdServer.Access(disk, null, NbdTls.Mode.OFF))) {
            PosixFileAttributes a = attributes(shared.socketPath());
            assertEquals("rw-rw----", PosixFilePermissions.toString(a.permissions()));
            assertEquals(disk, a.group());
            try (NbdTestClient c = NbdTestClient.open(shared.socketPath(), "snap", true)) {
                assertEquals(NbdFixture.original(0), c.read(0, 512)[0], "root is served");
            }
        }
    }

    @Test
    void rootTheDaemonUserAndTheGroupsMembersMayConnect() throws Exception {
        Path groups = Files.writeString(dir.resolve("group"), """
                root:x:0:
                disk:x:6:alice, bob
                staff:x:50:mallory
                """);
        GroupPrincipal disk = group("disk");
        GroupPrincipal users = group("users");
        PeerAccess ownerOnly = new PeerAccess("dmsnap", null, groups);
        assertTrue(ownerOnly.allows("root", users));
        assertTrue(ownerOnly.allows("dmsnap", users));
        assertFalse(ownerOnly.allows("alice", disk), "no --nbd-group: nobody else");
        assertEquals("root and dmsnap", ownerOnly.whoMay());

        PeerAccess shared = new PeerAccess("dmsnap", disk, groups);
        assertTrue(shared.allows("carol", disk), "disk is the peer's group (SO_PEERCRED)");
        assertTrue(shared.allows("alice", users), "listed as a member of disk");
        assertTrue(shared.allows("bob", users), "listed, after a space");
        assertFalse(shared.allows("mallory", users), "a member of staff only");
        assertFalse(shared.allows("ali", users), "not a prefix match");
        assertEquals("root, dmsnap and members of group disk", shared.whoMay());
        PeerAccess noDatabase = new PeerAccess("dmsnap", disk, dir.resolve("missing"));
        assertFalse(noDatabase.allows("alice", users));
        assertTrue(noDatabase.allows("carol", disk));
    }

    @Test
    void aRefusedPeerIsToldWhyOnEveryOptionAndMayAbort() throws Exception {
        try (Refusing server = new Refusing(dir.resolve("refuse.sock"));
                NbdTestClient c = NbdTestClient.connect(server.path)) {
            CompletableFuture<NbdHandshake.Result> negotiation = server.negotiate();
            c.greeting();
            c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
            for (int option :
                    new int[] {NBD_OPT_LIST, NBD_OPT_STRUCTURED_REPLY, NBD_OPT_STARTTLS, NBD_OPT_INFO, NBD_OPT_GO}) {
                c.option(
                        option,
                        option == NBD_OPT_GO || option == NBD_OPT_INFO ? NbdTestClient.goData("vol") : new byte[0]);
                NbdTestClient.OptionReply r = c.optionReply();
                assertEquals(NBD_REP_ERR_POLICY, r.type(), optionName(option));
                assertEquals(REASON, r.text());
            }
            c.option(NBD_OPT_ABORT, new byte[0]);
            assertEquals(NBD_REP_ACK, c.optionReply().type());
            assertNull(negotiation.get(60, TimeUnit.SECONDS));
        }
        try (Refusing server = new Refusing(dir.resolve("refuse2.sock"));
                NbdTestClient c = NbdTestClient.connect(server.path)) {
            CompletableFuture<NbdHandshake.Result> negotiation = server.negotiate();
            c.greeting();
            c.clientFlags(NBD_FLAG_C_FIXED_NEWSTYLE);
            c.option(NBD_OPT_EXPORT_NAME, "vol".getBytes(StandardCharsets.UTF_8));
            ExecutionException e = assertThrows(ExecutionException.class, () -> negotiation.get(60, TimeUnit.SECONDS));
            assertEquals(
                    "EXPORT_NAME refused: " + REASON,
                    e.getCause().getMessage(),
                    "EXPORT_NAME cannot be answered with an error: the connection ends");
        }
    }

    /** One connection negotiated by a refusing {@link NbdHandshake}; no export may be asked for. */
    private static final class Refusing implements AutoCloseable {
        final Path path;
        private final ServerSocketChannel listener;
        private final Arena arena = Arena.ofShared();

        Refusing(Path path) throws IOException {
            this.path = path;
            listener = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            listener.bind(UnixDomainSocketAddress.of(path));
        }

        CompletableFuture<NbdHandshake.Result> negotiate() {
            NbdHandshake.Exports none = new NbdHandshake.Exports() {
                @Override
                public MappedDevice resolve(String name) {
                    throw new AssertionError("a refused peer asked for export " + name + " and got this far");
                }

                @Override
                public List<MappedDevice> list() {
                    throw new AssertionError("a refused peer got the list of exports");
                }
            };
            return CompletableFuture.supplyAsync(() -> {
                try (SocketChannel client = listener.accept()) {
                    NbdChannel channel = new NbdChannel(
                            client, "refused", Duration.ofSeconds(60).toNanos(), new ManualClock());
                    return new NbdHandshake(
                                    channel, none, arena.allocate(4096), NbdHandshake.Policy.refuse(REASON), false)
                            .negotiate();
                } catch (IOException e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            });
        }

        @Override
        public void close() throws IOException {
            listener.close();
            arena.close();
        }
    }
}
