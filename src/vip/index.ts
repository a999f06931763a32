// Public surface of the VIP module.
export { VipBinder, type VipBinderOptions, type VipEvent, type BindResult, type UnbindResult } from './binder.js';
export { JsonFileOwnership, MemoryOwnership, type OwnedVip, type VipOwnershipStore } from './ownership.js';
export { defaultAnnounce, type AnnounceOptions } from './announce.js';
