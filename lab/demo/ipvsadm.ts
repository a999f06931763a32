// Reads `ipvsadm` output, the independent oracle of what the kernel's IPVS table holds (the daemon itself
// talks generic netlink; ipvsadm is the C tool every operator knows). Pure: text in, maps out.

export interface IpvsService {
  scheduler: string;
  /** e.g. "(mh-fallback,mh-port)", or "" without flags. */
  flags: string;
  servers: Array<{ server: string; forward: string; weight: number }>;
}

/** `ipvsadm -Ln`: "TCP 192.0.2.1:80" → scheduler, flags and real servers (connection columns left out, they
 * change with traffic). */
export function parseIpvsadm(text: string): Map<string, IpvsService> {
  const out = new Map<string, IpvsService>();
  let current: IpvsService | undefined;
  for (const line of text.split('\n')) {
    const vs = /^(TCP|UDP|SCTP)\s+(\S+)\s+(\S+)(?:\s+(.*\S))?/.exec(line);
    if (vs) {
      current = { scheduler: vs[3]!, flags: vs[4] ?? '', servers: [] };
      out.set(`${vs[1]} ${vs[2]}`, current);
      continue;
    }
    const rs = /^\s+->\s+(\S+)\s+(\S+)\s+(\d+)/.exec(line);
    if (rs && current) current.servers.push({ server: rs[1]!, forward: rs[2]!, weight: Number(rs[3]) });
  }
  return out;
}

/** `ipvsadm -Ln --stats --exact`: connection totals per virtual service ("TCP 192.0.2.1:80") and per real
 * server ("TCP 192.0.2.1:80 -> 198.51.100.11:80"). A service or destination deleted and added again starts
 * from zero, so totals that never go down show that nothing was re-created. */
export function parseIpvsConns(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let current: string | undefined;
  for (const line of text.split('\n')) {
    const vs = /^(TCP|UDP|SCTP)\s+(\S+)\s+(\d+)\s/.exec(line);
    if (vs) {
      current = `${vs[1]} ${vs[2]}`;
      out.set(current, Number(vs[3]));
      continue;
    }
    const rs = /^\s+->\s+(\S+)\s+(\d+)\s/.exec(line);
    if (rs && current) out.set(`${current} -> ${rs[1]}`, Number(rs[2]));
  }
  return out;
}
