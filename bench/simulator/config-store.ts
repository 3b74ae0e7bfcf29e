/** A station's configuration: 1.6 keys and their 2.x component/variable names side by side. */
export interface ConfigEntry {
  key: string;
  component: string;
  variable: string;
  value: string;
  readonly: boolean;
}

const DEFINITIONS: ReadonlyArray<Omit<ConfigEntry, 'value'> & { value: (connectors: number) => string }> = [
  { key: 'HeartbeatInterval', component: 'OCPPCommCtrlr', variable: 'HeartbeatInterval', value: () => '300', readonly: false },
  { key: 'WebSocketPingInterval', component: 'OCPPCommCtrlr', variable: 'WebSocketPingInterval', value: () => '0', readonly: false },
  { key: 'MeterValueSampleInterval', component: 'SampledDataCtrlr', variable: 'TxUpdatedInterval', value: () => '60', readonly: false },
  {
    key: 'MeterValuesSampledData',
    component: 'SampledDataCtrlr',
    variable: 'TxUpdatedMeasurands',
    value: () => 'Energy.Active.Import.Register',
    readonly: false,
  },
  { key: 'ConnectionTimeOut', component: 'TxCtrlr', variable: 'EVConnectionTimeOut', value: () => '60', readonly: false },
  { key: 'AuthorizeRemoteTxRequests', component: 'AuthCtrlr', variable: 'AuthorizeRemoteStart', value: () => 'false', readonly: false },
  { key: 'LocalPreAuthorize', component: 'AuthCtrlr', variable: 'LocalPreAuthorize', value: () => 'false', readonly: false },
  { key: 'NumberOfConnectors', component: 'ChargingStation', variable: 'NumberOfConnectors', value: (n) => String(n), readonly: true },
  { key: 'SupportedFeatureProfiles', component: 'ChargingStation', variable: 'SupportedFeatureProfiles', value: () => 'Core,RemoteTrigger', readonly: true },
];

export class ConfigStore {
  private readonly byKey = new Map<string, ConfigEntry>();
  private readonly byName = new Map<string, ConfigEntry>();

  constructor(connectors: number) {
    for (const definition of DEFINITIONS) {
      const entry: ConfigEntry = { ...definition, value: definition.value(connectors) };
      this.byKey.set(entry.key, entry);
      this.byName.set(`${entry.component}/${entry.variable}`, entry);
    }
  }

  entries(): ConfigEntry[] {
    return [...this.byKey.values()];
  }

  get(key: string): ConfigEntry | undefined {
    return this.byKey.get(key);
  }

  byComponent(component: string, variable: string): ConfigEntry | undefined {
    return this.byName.get(`${component}/${variable}`);
  }

  hasComponent(component: string): boolean {
    for (const entry of this.byKey.values()) if (entry.component === component) return true;
    return false;
  }
}
