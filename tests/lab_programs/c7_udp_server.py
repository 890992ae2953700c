# 借助第三方的模块
from socket import socket, AF_INET, SOCK_DGRAM

# 创建 服务端对象
server = socket(family=AF_INET, type=SOCK_DGRAM)

# 监听IP 和 端口
addr = "127.0.0.1"
prot = 9696
server.bind((addr, prot))
while True:
    # 持续的和当前链接好的客户端进行交互
    data_from_client, client_address = server.recvfrom(1024)
    # print(data_from_client) # b'a'

    print(f"data_from_client :>>>> {data_from_client.decode()}")
    # data_from_client :>>>> a
    data_to_client = data_from_client.decode().upper()
    server.sendto(data_to_client.encode("utf-8"), client_address)
