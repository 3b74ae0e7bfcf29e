import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { OcppClusterOptions } from '../ocpp-cluster.options.js';

export const {
  ConfigurableModuleClass: OcppClusterConfigurableModule,
  MODULE_OPTIONS_TOKEN: OCPP_CLUSTER_OPTIONS,
  OPTIONS_TYPE: OCPP_CLUSTER_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: OCPP_CLUSTER_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<OcppClusterOptions>({ moduleName: 'OcppCluster' })
  .setClassMethodName('forRoot')
  .setFactoryMethodName('createOcppClusterOptions')
  .setExtras({ isGlobal: false }, (definition, extras) => ({ ...definition, global: extras.isGlobal }))
  .build();
