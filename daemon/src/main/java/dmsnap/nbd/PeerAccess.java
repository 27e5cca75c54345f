package dmsnap.nbd;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.GroupPrincipal;
import java.util.List;
import jdk.net.UnixDomainPrincipal;

/**
 * Who may use the NBD Unix socket, checked on the peer's credentials (SO_PEERCRED) after the
 * kernel has checked the socket's mode: root, the daemon's user, and with {@code --nbd-group}
 * the members of that group. A member is a process whose group (SO_PEERCRED's gid, the primary
 * group it runs with) is the group, or whose user is listed as a member in the group database
 * file ({@code /etc/group}, read at each such connection, so a change applies at once). SO_PEERCRED
 * does not carry a process's supplementary groups: one that is in the group only through them
 * (e.g. systemd's SupplementaryGroups=) without its user listed in {@code /etc/group} is refused.
 */
final class PeerAccess {
    static final Path GROUP_FILE = Path.of("/etc/group");

    private final String daemonUser;
    private final GroupPrincipal group;
    private final Path groupFile;

    /**
     * @param group     null, or the group whose members may use the socket too
     * @param groupFile the group database (fields {@code name:password:gid:user,user,...})
     */
    PeerAccess(String daemonUser, GroupPrincipal group, Path groupFile) {
        this.daemonUser = daemonUser;
        this.group = group;
        this.groupFile = groupFile;
    }

    /** Whether {@code peer} may use the exports. */
    boolean allows(UnixDomainPrincipal peer) {
        return allows(peer.user().getName(), peer.group());
    }

    boolean allows(String user, GroupPrincipal peerGroup) {
        if (user.equals("root") || user.equals(daemonUser)) {
            return true;
        }
        return group != null && (group.equals(peerGroup) || listedMember(user));
    }

    /** Who may, for the log line of a refusal. */
    String whoMay() {
        String users = daemonUser.equals("root") ? "root" : "root, " + daemonUser;
        return group == null ? users.replace(", ", " and ") : users + " and members of group " + group.getName();
    }

    private boolean listedMember(String user) {
        List<String> lines;
        try {
            lines = Files.readAllLines(groupFile, java.nio.charset.StandardCharsets.UTF_8);
        } catch (IOException e) {
            return false; // no database to list members in: only the primary group counts
        }
        for (String line : lines) {
            String[] fields = line.split(":", -1);
            if (fields.length >= 4 && fields[0].equals(group.getName())) {
                for (String member : fields[3].split(",")) {
                    if (member.strip().equals(user)) {
                        return true;
                    }
                }
            }
        }
        return false;
    }
}
