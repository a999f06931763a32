// Public surface of the IPVS module: the client, its types and errors. The codec stays importable on its own
// for tests and tools (./codec.js).
export { IpvsClient, keyOf, type IpvsOp, type OpResult, type ServiceWithDests, type IpvsClientOptions, type TableEntry, type TableDestination } from './client.js';
export { parseProcIpvs, readProcIpvs, PROC_IPVS_PATH, ProcParseError, type ProcService, type ProcDestination } from './procfs.js';
export { IpvsInputError, NetlinkError, NetlinkTransportError } from './errors.js';
export { availableSchedulers, ensureScheduler, type SchedulerAvailability } from './schedulers.js';
export { serviceLabel, destLabel } from './codec.js';
export type * from './types.js';
